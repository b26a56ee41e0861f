#include "loader/counter_rng.h"

namespace cytonet {

PhiloxBlock Philox4x32(PhiloxBlock c, std::array<uint32_t, 2> k) {
  constexpr uint32_t kM0 = 0xD2511F53, kM1 = 0xCD9E8D57, kW0 = 0x9E3779B9, kW1 = 0xBB67AE85;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) k[0] += kW0, k[1] += kW1;
    const uint64_t p0 = uint64_t(kM0) * c[0], p1 = uint64_t(kM1) * c[2];
    c = {uint32_t(p1 >> 32) ^ c[1] ^ k[0], uint32_t(p1), uint32_t(p0 >> 32) ^ c[3] ^ k[1], uint32_t(p0)};
  }
  return c;
}

uint64_t CounterRng::Bits(uint32_t i) const {
  const PhiloxBlock out = Philox4x32({i, purpose_, a_, b_}, key_);
  return (uint64_t(out[0]) << 32) | out[1];
}

uint64_t CounterRng::Below(uint32_t i, uint64_t n) const {
  return uint64_t((static_cast<unsigned __int128>(Bits(i)) * n) >> 64);
}

}  // namespace cytonet
