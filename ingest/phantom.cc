#include "ingest/phantom.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

namespace cytonet::phantom {
namespace {

constexpr double kPi = 3.14159265358979323846;

Vec3 operator+(Vec3 a, Vec3 b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
Vec3 operator*(double s, Vec3 a) { return {s * a.x, s * a.y, s * a.z}; }
double Dot(Vec3 a, Vec3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
double Norm(Vec3 a) { return std::sqrt(Dot(a, a)); }
Vec3 Normalized(Vec3 a) {
  const double n = Norm(a);
  return n > 0 ? (1.0 / n) * a : Vec3{1, 0, 0};
}

// A random unit vector from a hash (two more hashes derived from it).
Vec3 RandomDirection(uint64_t hash) {
  const double z = 2 * Unit(Mix(hash ^ 1)) - 1;
  const double phi = 2 * kPi * Unit(Mix(hash ^ 2));
  const double r = std::sqrt(std::max(0.0, 1 - z * z));
  return {r * std::cos(phi), r * std::sin(phi), z};
}
double Signed(uint64_t hash) { return 2 * Unit(hash) - 1; }

// Hemisphere ellipsoids (mm): centres and semi-axes of a brain in MNI space.
constexpr double kHemisphereCentreX = 37, kCentreY = -18, kCentreZ = 14;
constexpr Vec3 kSemiAxes{35, 84, 60};
// Lateral ventricles, one per hemisphere.
constexpr double kVentricleX = 11, kVentricleY = -12, kVentricleZ = 18;
constexpr Vec3 kVentricleAxes{5, 22, 9};

// Base laminar profile (layers I..VI), loosely after isocortex in silver stains.
constexpr std::array<double, 6> kLayerFraction{0.09, 0.08, 0.27, 0.10, 0.21, 0.25};
constexpr std::array<double, 6> kCellDensity{0.08, 0.95, 0.55, 0.90, 0.45, 0.60};
constexpr std::array<double, 6> kCellRadiusUm{3.0, 4.0, 6.5, 3.5, 8.5, 5.0};
// Grey levels before staining: neuropil of layer I, of layers II-VI, white matter (pale:
// the silver stain marks cell bodies, not myelin).
constexpr double kLayerOneGrey = 226, kCortexGrey = 214, kWhiteMatterGrey = 236;

}  // namespace

uint64_t Mix(uint64_t z) {  // SplitMix64's finaliser
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t Hash(std::initializer_list<uint64_t> keys) {
  uint64_t h = 0x6a09e667f3bcc909ULL;
  for (uint64_t k : keys) h = Mix(h ^ Mix(k));
  return h;
}

char HemisphereLetter(Hemisphere h) { return h == Hemisphere::kLeft ? 'L' : 'R'; }

int LayerAt(const LaminarProfile& profile, double depth) {
  if (depth < 0) return kMaskBackground;
  if (depth >= 1) return kMaskWhiteMatter;
  double top = 0;
  for (int layer = 0; layer < 6; ++layer) {
    top += profile.layer_fraction[layer];
    if (depth < top) return layer + 1;
  }
  return 6;
}

// ---------------------------------------------------------------------------- atlas

PhantomAtlas::PhantomAtlas(uint64_t seed, int areas_per_hemisphere) : seed_(seed) {
  const int k = std::max(1, areas_per_hemisphere);
  const double golden = kPi * (3 - std::sqrt(5.0));
  // Smooth functions of the direction: profiles of nearby seeds are alike.
  auto smooth = [&](int parameter, Vec3 dir) {
    const Vec3 wave = RandomDirection(Hash({seed, 100, uint64_t(parameter)}));
    const double phase = 2 * kPi * Unit(Hash({seed, 101, uint64_t(parameter)}));
    return std::sin(2.2 * Dot(wave, dir) + phase);
  };
  for (int i = 0; i < k; ++i) {
    const double z = 1 - 2 * (i + 0.5) / k;
    const double r = std::sqrt(std::max(0.0, 1 - z * z));
    const double phi = i * golden;
    const Vec3 jitter = 0.15 * RandomDirection(Hash({seed, 99, uint64_t(i)}));
    Area area;
    area.id = i + 1;
    char name[16];
    std::snprintf(name, sizeof(name), "A%02d", area.id);
    area.name = name;
    area.seed_direction = Normalized(Vec3{r * std::cos(phi), r * std::sin(phi), z} + jitter);
    const Vec3 d = area.seed_direction;
    LaminarProfile& p = area.profile;
    p.thickness_mm = 2.5 + 0.6 * smooth(0, d);
    double sum = 0;
    for (int l = 0; l < 6; ++l) {
      p.layer_fraction[l] = kLayerFraction[l] * (1 + 0.45 * smooth(1 + l, d));
      p.cell_density[l] = std::clamp(kCellDensity[l] * (1 + 0.35 * smooth(8 + l, d)), 0.02, 1.0);
      p.cell_radius_um[l] = kCellRadiusUm[l] * (1 + 0.3 * smooth(14 + l, d));
    }
    if (smooth(7, d) < -0.45) p.layer_fraction[3] *= 0.15;  // agranular: almost no layer IV
    for (double f : p.layer_fraction) sum += f;
    for (double& f : p.layer_fraction) f /= sum;
    areas_.push_back(std::move(area));
  }
  for (int i = 0; i < 3; ++i) border_waves_[i] = 5.0 * RandomDirection(Hash({seed, 98, uint64_t(i)}));
}

int PhantomAtlas::AreaAt(const Vec3& u) const {
  // Jitter the direction with a smooth field so borders are wavy, not great circles.
  const Vec3 w = u + 0.12 * Vec3{std::sin(Dot(border_waves_[0], u)), std::sin(Dot(border_waves_[1], u)),
                                 std::sin(Dot(border_waves_[2], u))};
  int best = 1;
  double best_dot = -2;
  for (const Area& area : areas_) {
    const double d = Dot(w, area.seed_direction);
    if (d > best_dot) best_dot = d, best = area.id;
  }
  return best;
}

std::vector<std::pair<int, int>> PhantomAtlas::Adjacency() const {
  constexpr int kRows = 180, kCols = 360;
  std::vector<int> label(kRows * kCols);
  for (int i = 0; i < kRows; ++i) {
    const double theta = kPi * (i + 0.5) / kRows;
    for (int j = 0; j < kCols; ++j) {
      const double phi = 2 * kPi * j / kCols;
      label[i * kCols + j] =
          AreaAt({std::sin(theta) * std::cos(phi), std::sin(theta) * std::sin(phi), std::cos(theta)});
    }
  }
  std::set<std::pair<int, int>> pairs;
  auto add = [&](int a, int b) {
    if (a != b) pairs.insert({std::min(a, b), std::max(a, b)});
  };
  for (int i = 0; i < kRows; ++i) {
    for (int j = 0; j < kCols; ++j) {
      add(label[i * kCols + j], label[i * kCols + (j + 1) % kCols]);
      if (i + 1 < kRows) add(label[i * kCols + j], label[(i + 1) * kCols + j]);
    }
  }
  return {pairs.begin(), pairs.end()};
}

// ---------------------------------------------------------------------------- brain

PhantomBrain::PhantomBrain(const PhantomAtlas& atlas, uint64_t seed, int brain_index)
    : atlas_(&atlas), seed_(seed), index_(brain_index) {
  // Brains share their major folds (study-wide waves) and differ in the details.
  for (int i = 0; i < kFoldWaves; ++i) {
    const Vec3 base = RandomDirection(Hash({seed, 200, uint64_t(i)}));
    const Vec3 own = RandomDirection(Hash({seed, 201, uint64_t(brain_index), uint64_t(i)}));
    const double frequency = 18 + 6 * Unit(Hash({seed, 202, uint64_t(i)}));
    fold_waves_[i] = frequency * Normalized(base + 0.25 * own);
    fold_phase_[i] = 2 * kPi * Unit(Hash({seed, 203, uint64_t(i)})) +
                     1.2 * Signed(Hash({seed, 204, uint64_t(brain_index), uint64_t(i)}));
  }
  fold_amplitude_ = 0.17 + 0.03 * Signed(Hash({seed, 205, uint64_t(brain_index)}));
}

double PhantomBrain::Implicit(const Vec3& p, Hemisphere h, Vec3* unit_direction) const {
  // Coordinates in the hemisphere's unit ellipsoid, x mirrored so that +x is lateral.
  const double side = h == Hemisphere::kRight ? 1 : -1;
  const Vec3 q{(side * p.x - kHemisphereCentreX) / kSemiAxes.x, (p.y - kCentreY) / kSemiAxes.y,
               (p.z - kCentreZ) / kSemiAxes.z};
  const double rho = Norm(q);
  const Vec3 u = rho > 0 ? (1 / rho) * q : Vec3{1, 0, 0};
  // A sum of plane waves on the sphere is a labyrinth; sulci run where it is high, and the
  // steep logistic keeps them narrow against broad gyral crowns.
  double waves = 0;
  for (int i = 0; i < kFoldWaves; ++i) waves += std::cos(Dot(fold_waves_[i], u) + fold_phase_[i]);
  const double fold = 1 / (1 + std::exp(-9 * (waves / std::sqrt(double(kFoldWaves)) - 0.7)));
  const double pial_rho = 1 - fold_amplitude_ * fold;
  const double radius_mm = Norm({kSemiAxes.x * u.x, kSemiAxes.y * u.y, kSemiAxes.z * u.z});
  if (unit_direction) *unit_direction = u;
  return radius_mm * (pial_rho - rho);
}

TissuePoint PhantomBrain::At(const Vec3& p) const {
  TissuePoint t;
  t.hemisphere = p.x >= 0 ? Hemisphere::kRight : Hemisphere::kLeft;
  Vec3 u;
  const double g = Implicit(p, t.hemisphere, &u);
  // Signed distance ≈ g / |∇g| (central differences), so the ribbon keeps its thickness on
  // sulcal walls, where the radial measure would thin it.
  constexpr double h = 0.05;
  const double gx =
      Implicit(p + Vec3{h, 0, 0}, t.hemisphere, nullptr) - Implicit(p + Vec3{-h, 0, 0}, t.hemisphere, nullptr);
  const double gy =
      Implicit(p + Vec3{0, h, 0}, t.hemisphere, nullptr) - Implicit(p + Vec3{0, -h, 0}, t.hemisphere, nullptr);
  const double gz =
      Implicit(p + Vec3{0, 0, h}, t.hemisphere, nullptr) - Implicit(p + Vec3{0, 0, -h}, t.hemisphere, nullptr);
  const double gradient = std::sqrt(gx * gx + gy * gy + gz * gz) / (2 * h);
  // Deep inside, the angular terms make |∇g| large without any surface nearby: there the
  // radial measure stands (it is far beyond any cortical thickness anyway).
  const double distance_mm = g > 12 || gradient < 1e-6 ? std::max(g, 12.0) : std::min(g / gradient, 12.0);
  t.area = atlas_->AreaAt(u);
  t.depth = distance_mm / atlas_->area(t.area).profile.thickness_mm;
  const double side = t.hemisphere == Hemisphere::kRight ? 1 : -1;
  const Vec3 v{(side * p.x - kVentricleX) / kVentricleAxes.x, (p.y - kVentricleY) / kVentricleAxes.y,
               (p.z - kVentricleZ) / kVentricleAxes.z};
  if (Dot(v, v) < 1 && t.depth > 1) {
    t.in_ventricle = true;
    t.depth = -1;
  }
  return t;
}

// ---------------------------------------------------------------------------- transforms

std::vector<SectionSpec> PlanStudy(const PhantomOptions& o) {
  std::vector<SectionSpec> sections;
  const double w = double(o.width), h = double(o.height);
  // The coronal extent of the brain (x −70…70, z −46…74 mm) with a margin.
  const double base_mm_per_px = o.true_scale ? o.pixel_size_um / 1000 : 1.12 * std::max(140.0 / w, 124.0 / h);
  // Staining and illumination. At true scale they stay inside what the training
  // augmentation covers (contrast 0.9–1, offset ±25 grey levels: loader/augmentation.h),
  // so a model can learn to ignore them; the fit mode keeps its wider, older ranges.
  const double brain_gain_min = o.true_scale ? 0.95 : 0.85, brain_gain_span = o.true_scale ? 0.05 : 0.25;
  const double section_gain_min = o.true_scale ? 0.97 : 0.92, section_gain_span = o.true_scale ? 0.03 : 0.14;
  const double brain_offset_max = o.true_scale ? 5 : 8, section_offset_max = 3;
  const double illumination_max = o.true_scale ? 0.03 : 0.06;
  for (int b = 0; b < o.num_brains; ++b) {
    auto brain_random = [&](uint64_t what) { return Unit(Hash({o.seed, 300, uint64_t(b), what})); };
    const double brain_scale = 0.95 + 0.1 * brain_random(0);
    const double brain_gain = brain_gain_min + brain_gain_span * brain_random(1);
    const double brain_offset = brain_offset_max * (2 * brain_random(2) - 1);
    char brain_name[16];
    std::snprintf(brain_name, sizeof(brain_name), "PB%02d", b + 1);
    for (int s = 0; s < o.sections_per_brain; ++s) {
      auto random = [&](uint64_t what) { return Unit(Hash({o.seed, 301, uint64_t(b), uint64_t(s), what})); };
      SectionSpec spec;
      spec.brain_index = b;
      spec.brain = brain_name;
      spec.width = o.width;
      spec.height = o.height;
      spec.y_mm = -85 + (s + 0.5 + 0.6 * (random(0) - 0.5)) * 150.0 / o.sections_per_brain;
      char section_name[16];
      std::snprintf(section_name, sizeof(section_name), "%04d", int(std::lround((spec.y_mm + 110) * 50)));
      spec.section = section_name;
      const double m = base_mm_per_px * brain_scale;
      const double theta = (random(1) - 0.5) * 2 * (8 * kPi / 180);
      const double tilt_x = (random(2) - 0.5) * 0.1, tilt_z = (random(3) - 0.5) * 0.1;
      const double cx = (random(4) - 0.5) * 6, cz = 14 + (random(5) - 0.5) * 6;
      // x = cx + m(cosθ·u − sinθ·v), z = cz − m(sinθ·u + cosθ·v) with (u, v) from the image
      // centre; y = y_s plus an oblique tilt.
      const double xc = m * std::cos(theta), xr = -m * std::sin(theta);
      const double zc = -m * std::sin(theta), zr = -m * std::cos(theta);
      const double yc = tilt_x * xc + tilt_z * zc, yr = tilt_x * xr + tilt_z * zr;
      spec.transform.affine = {xc, xr, cx - xc * w / 2 - xr * h / 2, yc, yr, spec.y_mm - yc * w / 2 - yr * h / 2,
                               zc, zr, cz - zc * w / 2 - zr * h / 2};
      if ((b + s) % 2 == 1) {  // a non-linear part for every other section
        DisplacementField field;
        field.nodes_x = field.nodes_y = 5;
        field.spacing_px_x = w / 4;
        field.spacing_px_y = h / 4;
        for (int64_t n = 0; n < 25; ++n) {
          field.values_mm.push_back(0.6 * (2 * random(100 + 3 * n) - 1));
          field.values_mm.push_back(0.2 * (2 * random(101 + 3 * n) - 1));
          field.values_mm.push_back(0.6 * (2 * random(102 + 3 * n) - 1));
        }
        spec.transform.displacement = std::move(field);
      }
      spec.true_pixel_size_um = o.true_scale ? o.pixel_size_um : 0;
      spec.stain_gain = brain_gain * (section_gain_min + section_gain_span * random(6));
      spec.stain_offset = brain_offset + section_offset_max * (2 * random(7) - 1);
      spec.illumination = {illumination_max * random(8), 0.5 + random(9), 0.5 + random(10), 2 * kPi * random(11)};
      spec.seed = Hash({o.seed, 302, uint64_t(b), uint64_t(s)});
      sections.push_back(std::move(spec));
    }
  }
  return sections;
}

// ---------------------------------------------------------------------------- rendering

// The geometry on a coarse grid of nodes `node_spacing_px_` apart, anchored at multiples
// of the spacing so that every region sees the same nodes.
struct SectionRenderer::Field {
  int64_t node0_y = 0, node0_x = 0, rows = 0, cols = 0, spacing = 1;
  std::vector<float> depth;
  std::vector<int16_t> area;

  // Bilinear depth and nearest-node area at a pixel inside the sampled region.
  void At(double row, double col, double* depth_out, int* area_out) const {
    const double fy = row / spacing - node0_y, fx = col / spacing - node0_x;
    const int64_t i = std::clamp<int64_t>(int64_t(std::floor(fy)), 0, rows - 2);
    const int64_t j = std::clamp<int64_t>(int64_t(std::floor(fx)), 0, cols - 2);
    const double ty = std::clamp(fy - i, 0.0, 1.0), tx = std::clamp(fx - j, 0.0, 1.0);
    const float* d = &depth[i * cols + j];
    *depth_out = (1 - ty) * ((1 - tx) * d[0] + tx * d[1]) + ty * ((1 - tx) * d[cols] + tx * d[cols + 1]);
    *area_out = area[(i + (ty >= 0.5)) * cols + j + (tx >= 0.5)];
  }
};

SectionRenderer::SectionRenderer(const PhantomBrain& brain, SectionSpec spec) : brain_(&brain), spec_(std::move(spec)) {
  const double mm_per_px = spec_.transform.MillimetresPerPixel();
  // At true scale cells have their size in micrometres. A fitted phantom is a shrunken
  // brain, cells shrunk alike (as if full size were ≈0.002 MNI mm per pixel).
  px_per_um_ = spec_.true_pixel_size_um > 0 ? 1 / spec_.true_pixel_size_um : std::clamp(0.002 / mm_per_px, 0.02, 2.0);
  node_spacing_px_ = std::clamp<int64_t>(std::lround(0.15 / mm_per_px), 2, 32);
}

TissuePoint SectionRenderer::AtPixel(double col, double row) const {
  return brain_->At(spec_.transform.Apply(col, row));
}

SectionRenderer::Field SectionRenderer::SampleField(int64_t y0, int64_t x0, int64_t h, int64_t w) const {
  Field f;
  f.spacing = node_spacing_px_;
  auto floor_div = [](int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); };
  f.node0_y = floor_div(y0, f.spacing);
  f.node0_x = floor_div(x0, f.spacing);
  f.rows = floor_div(y0 + h, f.spacing) - f.node0_y + 2;
  f.cols = floor_div(x0 + w, f.spacing) - f.node0_x + 2;
  f.depth.resize(f.rows * f.cols);
  f.area.resize(f.rows * f.cols);
  for (int64_t i = 0; i < f.rows; ++i) {
    for (int64_t j = 0; j < f.cols; ++j) {
      const TissuePoint t = AtPixel(double((f.node0_x + j) * f.spacing), double((f.node0_y + i) * f.spacing));
      f.depth[i * f.cols + j] = float(t.depth);
      f.area[i * f.cols + j] = int16_t(t.area);
    }
  }
  return f;
}

void SectionRenderer::RenderLayerMask(int64_t y0, int64_t x0, int64_t h, int64_t w, uint8_t* out) const {
  const Field f = SampleField(y0, x0, h, w);
  for (int64_t r = 0; r < h; ++r) {
    for (int64_t c = 0; c < w; ++c) {
      double depth;
      int area;
      f.At(double(y0 + r), double(x0 + c), &depth, &area);
      out[r * w + c] = uint8_t(LayerAt(brain_->atlas().area(area).profile, depth));
    }
  }
}

void SectionRenderer::Render(int64_t y0, int64_t x0, int64_t h, int64_t w, uint8_t* out) const {
  const double k = px_per_um_;
  const bool true_scale = spec_.true_pixel_size_um > 0;
  // Cells sit on a 16 µm grid of sites. The fitted mode keeps them at least 2.5 px apart
  // and 0.6 px in radius; at true scale they keep their size, and a cell smaller than a
  // pixel darkens the pixels around its centre by the area it covers.
  const double cell_spacing = true_scale ? 16 * k : std::max(2.5, 16 * k);
  constexpr double kSubPixelAxis = 0.75;
  const double vessel_spacing = std::max(12.0, 300 * k);
  const double max_cell_radius = std::max(1.0, 14 * k * 1.5);
  const double max_vessel_axis = std::max(2.0, 60 * k) + 2;
  const int64_t margin =
      int64_t(std::ceil(std::max(cell_spacing + max_cell_radius, vessel_spacing + max_vessel_axis))) + 2;
  const Field f = SampleField(y0 - margin, x0 - margin, h + 2 * margin, w + 2 * margin);
  const auto& atlas = brain_->atlas();

  // 1. Neuropil and white matter grey; background stays exactly 255 (the fill value).
  std::vector<float> grey(size_t(h * w));
  std::vector<uint8_t> tissue(size_t(h * w));
  for (int64_t r = 0; r < h; ++r) {
    for (int64_t c = 0; c < w; ++c) {
      double depth;
      int area;
      f.At(double(y0 + r), double(x0 + c), &depth, &area);
      const int layer = LayerAt(atlas.area(area).profile, depth);
      const size_t i = size_t(r * w + c);
      tissue[i] = layer != kMaskBackground;
      grey[i] = layer == kMaskBackground    ? 255.f
                : layer == 1                ? float(kLayerOneGrey)
                : layer == kMaskWhiteMatter ? float(kWhiteMatterGrey)
                                            : float(kCortexGrey - 2 * layer);
    }
  }

  // Paints an ellipse (semi-axes a along `angle`, b across) with anti-aliased edges onto
  // tissue pixels; `paint(i, coverage, e)` gets the normalised radius e.
  auto splat = [&](double cy, double cx, double a, double b, double angle, auto&& paint) {
    const double reach = std::max(a, b) + 1.5;
    const int64_t r0 = std::max<int64_t>(y0, int64_t(std::floor(cy - reach)));
    const int64_t r1 = std::min<int64_t>(y0 + h, int64_t(std::ceil(cy + reach)) + 1);
    const int64_t c0 = std::max<int64_t>(x0, int64_t(std::floor(cx - reach)));
    const int64_t c1 = std::min<int64_t>(x0 + w, int64_t(std::ceil(cx + reach)) + 1);
    const double ca = std::cos(angle), sa = std::sin(angle);
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t c = c0; c < c1; ++c) {
        const size_t i = size_t((r - y0) * w + (c - x0));
        if (!tissue[i]) continue;
        const double dy = r - cy, dx = c - cx;
        const double along = (ca * dx + sa * dy) / a, across = (-sa * dx + ca * dy) / b;
        const double e = std::sqrt(along * along + across * across);
        paint(i, std::clamp((1 - e) * std::min(a, b) + 0.5, 0.0, 1.0), e, std::min(a, b));
      }
    }
  };

  // Darkens the four pixels nearest to (cy, cx) towards `dark` by `coverage` of a pixel,
  // split bilinearly (pixel centres at integer coordinates, as in splat).
  auto deposit = [&](double cy, double cx, double coverage, double dark) {
    const int64_t r0 = int64_t(std::floor(cy)), c0 = int64_t(std::floor(cx));
    const double ty = cy - double(r0), tx = cx - double(c0);
    for (int dr = 0; dr < 2; ++dr) {
      for (int dc = 0; dc < 2; ++dc) {
        const int64_t r = r0 + dr, c = c0 + dc;
        if (r < y0 || r >= y0 + h || c < x0 || c >= x0 + w) continue;
        const size_t i = size_t((r - y0) * w + (c - x0));
        if (!tissue[i]) continue;
        const double weight = (dr ? ty : 1 - ty) * (dc ? tx : 1 - tx);
        grey[i] += float(coverage * weight * (dark - grey[i]));
      }
    }
  };

  // 2. Cell bodies on a jittered grid of sites; the layer at the site decides.
  {
    const int64_t i0 = int64_t(std::floor((y0 - margin) / cell_spacing)),
                  i1 = int64_t(std::ceil((y0 + h + margin) / cell_spacing));
    const int64_t j0 = int64_t(std::floor((x0 - margin) / cell_spacing)),
                  j1 = int64_t(std::ceil((x0 + w + margin) / cell_spacing));
    for (int64_t i = i0; i <= i1; ++i) {
      for (int64_t j = j0; j <= j1; ++j) {
        const uint64_t site = Hash({spec_.seed, 11, uint64_t(i), uint64_t(j)});
        const double cy = (i + Unit(Mix(site ^ 1))) * cell_spacing, cx = (j + Unit(Mix(site ^ 2))) * cell_spacing;
        double depth;
        int area;
        f.At(cy, cx, &depth, &area);
        const LaminarProfile& profile = atlas.area(area).profile;
        const int layer = LayerAt(profile, depth);
        if (layer == kMaskBackground) continue;
        const bool white = layer == kMaskWhiteMatter;
        const double density = white ? 0.06 : profile.cell_density[layer - 1];
        if (Unit(Mix(site ^ 3)) >= density) continue;
        const double true_radius =
            (white ? 2.5 : profile.cell_radius_um[layer - 1]) * k * (0.75 + 0.5 * Unit(Mix(site ^ 4)));
        const double radius = true_scale ? true_radius : std::max(0.6, true_radius);
        const double elongation = (layer == 3 || layer == 5) ? 1 + 0.5 * Unit(Mix(site ^ 5)) : 1.1;
        const double dark = 55 + 55 * Unit(Mix(site ^ 6));
        if (true_scale && radius * elongation < kSubPixelAxis) {
          deposit(cy, cx, std::min(1.0, kPi * radius * radius * elongation), dark);
          continue;
        }
        splat(cy, cx, radius * elongation, radius, kPi * Unit(Mix(site ^ 7)),
              [&](size_t p, double coverage, double, double) { grey[p] += float(coverage * (dark - grey[p])); });
      }
    }
  }

  // 3. Blood vessels: bright lumens with a darker wall, wherever there is tissue.
  {
    const int64_t i0 = int64_t(std::floor((y0 - margin) / vessel_spacing)),
                  i1 = int64_t(std::ceil((y0 + h + margin) / vessel_spacing));
    const int64_t j0 = int64_t(std::floor((x0 - margin) / vessel_spacing)),
                  j1 = int64_t(std::ceil((x0 + w + margin) / vessel_spacing));
    for (int64_t i = i0; i <= i1; ++i) {
      for (int64_t j = j0; j <= j1; ++j) {
        const uint64_t site = Hash({spec_.seed, 13, uint64_t(i), uint64_t(j)});
        if (Unit(Mix(site ^ 1)) >= 0.4) continue;
        const double cy = (i + Unit(Mix(site ^ 2))) * vessel_spacing, cx = (j + Unit(Mix(site ^ 3))) * vessel_spacing;
        double depth;
        int area;
        f.At(cy, cx, &depth, &area);
        if (depth < 0) continue;
        const double a = std::max(1.0, (15 + 45 * Unit(Mix(site ^ 4))) * k);
        const double b = std::max(0.7, (5 + 10 * Unit(Mix(site ^ 5))) * k);
        const double wall = std::max(0.7, 2.0 * k);
        splat(cy, cx, a + wall, b + wall, kPi * Unit(Mix(site ^ 6)),
              [&](size_t p, double coverage, double e, double minor) {
                const double inner = b / (b + wall);
                const float target = e < inner ? 247.f : 150.f;
                grey[p] += float(coverage * (target - grey[p]));
              });
      }
    }
  }

  // 4. Staining (brain × section), illumination gradient and sensor noise on tissue.
  const auto& il = spec_.illumination;
  for (int64_t r = 0; r < h; ++r) {
    const double v = double(y0 + r) / double(spec_.height);
    for (int64_t c = 0; c < w; ++c) {
      const size_t i = size_t(r * w + c);
      if (!tissue[i]) {
        out[i] = 255;
        continue;
      }
      const double u = double(x0 + c) / double(spec_.width);
      const double light = 1 + il[0] * std::sin(2 * kPi * (il[1] * u + il[2] * v) + il[3]);
      const double noise =
          6 * (Unit(Mix(spec_.seed ^ (uint64_t(y0 + r) * 0x9e3779b97f4a7c15ULL + uint64_t(x0 + c)))) - 0.5);
      const double value = 255 - (255 - grey[i]) * spec_.stain_gain * light + spec_.stain_offset + noise;
      out[i] = uint8_t(std::clamp(std::lround(value), 0L, 254L));
    }
  }
}

std::vector<SamplingPoint> SectionRenderer::MidlinePoints(double spacing_mm) const {
  const double spacing_px = spacing_mm / spec_.transform.MillimetresPerPixel();
  const int64_t rows = int64_t(double(spec_.height) / spacing_px) + 1;
  const int64_t cols = int64_t(double(spec_.width) / spacing_px) + 1;
  std::vector<double> value(rows * cols);  // depth − 0.5 at the nodes
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) value[i * cols + j] = AtPixel(j * spacing_px, i * spacing_px).depth - 0.5;
  }
  std::vector<SamplingPoint> points;
  const double max_x = double(spec_.width - 1), max_y = double(spec_.height - 1);
  auto try_edge = [&](int64_t i0, int64_t j0, int64_t i1, int64_t j1) {
    if (i1 >= rows || j1 >= cols) return false;
    const double a = value[i0 * cols + j0], b = value[i1 * cols + j1];
    if ((a < 0) == (b < 0)) return false;
    const double t = a / (a - b);
    const double x = (j0 + t * (j1 - j0)) * spacing_px, y = (i0 + t * (i1 - i0)) * spacing_px;
    if (x > max_x || y > max_y) return false;
    const TissuePoint tp = AtPixel(x, y);
    if (tp.depth < 0.2 || tp.depth > 0.8) return false;  // a crossing through background
    SamplingPoint p;
    p.id = int64_t(points.size());
    p.x_px = x;
    p.y_px = y;
    p.area = tp.area;
    p.hemisphere = tp.hemisphere;
    p.layer = LayerAt(brain_->atlas().area(tp.area).profile, tp.depth);
    const uint64_t h = Hash({spec_.seed, 19, uint64_t(p.id)});
    if (Unit(h) < 0.04) {  // a registration error: the point lands 2.5 mm away
      const double angle = 2 * kPi * Unit(Mix(h));
      p.x_px = std::clamp(x + 2.5 / spec_.transform.MillimetresPerPixel() * std::cos(angle), 0.0, max_x);
      p.y_px = std::clamp(y + 2.5 / spec_.transform.MillimetresPerPixel() * std::sin(angle), 0.0, max_y);
      p.displaced = true;
    }
    points.push_back(p);
    return true;
  };
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      if (!try_edge(i, j, i, j + 1)) try_edge(i, j, i + 1, j);
    }
  }
  return points;
}

}  // namespace cytonet::phantom
