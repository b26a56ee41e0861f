#include "loader/augmentation.h"

#include <cmath>
#include <numbers>

#include "loader/counter_rng.h"

namespace cytonet {

namespace {
constexpr uint32_t kAugmentPurpose = 0x4155;  // "AU"
}  // namespace

bool AugmentationParams::IsIdentity() const {
  return theta == 0 && shift_mm == 0 && !mirror && alpha == 1 && beta == 0 && gamma == 1 &&
         filter == PatchFilter::kNone;
}

AugmentationParams DrawAugmentation(uint64_t seed, uint32_t epoch, uint32_t position,
                                    const AugmentationOptions& options, uint32_t view) {
  AugmentationParams p;
  if (!options.enabled) return p;
  // Each parameter has its own draw index, so switching one group off leaves the others.
  // Views differ in the purpose's high half; the low half keeps it apart from other purposes.
  const CounterRng rng(seed, kAugmentPurpose + (view << 16), epoch, position);
  constexpr double kPi = std::numbers::pi;
  if (options.geometry) {
    p.theta = rng.Uniform(0, -kPi, kPi);
    p.shift_mm = rng.Uniform(1, 0, options.max_shift_mm);
    p.shift_direction = rng.Uniform(2, 0, 2 * kPi);
    p.mirror = rng.Uniform(3) < 0.5;
  }
  if (options.intensity) {
    p.alpha = rng.Uniform(4, 0.9, 1.0);
    p.beta = rng.Uniform(5, -0.1, 0.1);
    const double z = rng.Uniform(6, -0.05, 0.05) / std::sqrt(2.0);
    p.gamma = std::log(0.5 + z) / std::log(0.5 - z);
  }
  if (options.filter) {
    const double which = rng.Uniform(7);
    p.filter = which < 0.25 ? PatchFilter::kBlur : which < 0.5 ? PatchFilter::kSharpen : PatchFilter::kNone;
    if (p.filter != PatchFilter::kNone) p.sigma = rng.Uniform(8, 0.125, 1.0);
    if (p.filter == PatchFilter::kSharpen) p.delta = rng.Uniform(9, 0.5, 1.5);
  }
  return p;
}

}  // namespace cytonet
