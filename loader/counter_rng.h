// Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11): every random value
// is a pure function of (seed, counter), so a draw depends only on what it is for (epoch,
// sample, purpose), never on the order in which threads happen to ask.
#pragma once

#include <array>
#include <cstdint>

namespace cytonet {

using PhiloxBlock = std::array<uint32_t, 4>;

// Philox4x32 with 10 rounds.
PhiloxBlock Philox4x32(PhiloxBlock counter, std::array<uint32_t, 2> key);

// Draws for one (seed, purpose, a, b), e.g. (seed, augmentation, epoch, sample): the
// Philox key is the seed and the counter (draw index, purpose, a, b), so distinct tuples
// never share a counter. `Uniform(i)` is the i-th draw, in [0, 1).
class CounterRng {
 public:
  CounterRng(uint64_t seed, uint32_t purpose, uint32_t a, uint32_t b = 0)
      : key_{uint32_t(seed), uint32_t(seed >> 32)}, purpose_(purpose), a_(a), b_(b) {}

  // 64 random bits for draw i.
  uint64_t Bits(uint32_t i) const;
  // Uniform in [0, 1) with 53 random bits.
  double Uniform(uint32_t i) const { return double(Bits(i) >> 11) * 0x1.0p-53; }
  double Uniform(uint32_t i, double low, double high) const { return low + (high - low) * Uniform(i); }
  // Uniform integer in [0, n) (multiply-shift; bias below n / 2^64).
  uint64_t Below(uint32_t i, uint64_t n) const;

 private:
  std::array<uint32_t, 2> key_;
  uint32_t purpose_, a_, b_;
};

}  // namespace cytonet
