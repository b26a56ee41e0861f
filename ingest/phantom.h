// The phantom: synthetic brains that look enough like silver-stained cortex to train on.
//
// One 3-D model lives in a synthetic MNI space (millimetres, x left→right, y posterior→
// anterior, z inferior→superior): two hemispheres whose pial surface is folded into gyri
// and sulci, a six-layer cortical ribbon, white matter and ventricles. The cortical sheet
// is parcellated into areas (a jittered Voronoi partition of the sphere, shared by every
// brain and mirrored between hemispheres); each area has a laminar profile (layer
// thicknesses, cell density and cell size per layer) that varies smoothly with the area's
// position, so neighbouring areas look alike and distant ones differ.
//
// What does not depend on the area (the confounds a shortcut learner picks up): each brain
// has its own folding, size and staining; each section its own brightness, illumination
// gradient, in-plane rotation, oblique cut and blood vessels.
//
// A section is the coronal cut of a brain seen through its transform (section pixel →
// MNI mm, affine plus an optional smooth displacement field). Every pixel is a pure
// function of (seed, brain, section, pixel position): any region renders the same whatever
// the tiling, so full-size sections render tile by tile in bounded memory.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ingest/section_transform.h"

namespace cytonet::phantom {

// Counter-based randomness: every random choice is a hash of its coordinates.
uint64_t Mix(uint64_t value);
uint64_t Hash(std::initializer_list<uint64_t> keys);
// Uniform in [0, 1) from a hash.
inline double Unit(uint64_t hash) { return static_cast<double>(hash >> 11) * 0x1.0p-53; }

enum class Hemisphere : int8_t { kLeft = 0, kRight = 1 };
char HemisphereLetter(Hemisphere h);

// Tissue classes of a layer mask. Layers I..VI are 1..6.
enum MaskLabel : uint8_t { kMaskBackground = 0, kMaskWhiteMatter = 7 };

struct LaminarProfile {
  double thickness_mm = 2.5;
  std::array<double, 6> layer_fraction{};  // of the thickness, layers I..VI from the pial side
  std::array<double, 6> cell_density{};    // probability that a cell site holds a cell
  std::array<double, 6> cell_radius_um{};
};

struct Area {
  int id = 0;  // 1..areas_per_hemisphere; the same id in both hemispheres
  std::string name;
  Vec3 seed_direction;  // on the unit sphere of the hemisphere's ellipsoid
  LaminarProfile profile;
};

// The parcellation and the laminar profiles, shared by all brains of a study.
class PhantomAtlas {
 public:
  PhantomAtlas(uint64_t seed, int areas_per_hemisphere);

  // The area whose seed is nearest to the (jittered) unit direction.
  int AreaAt(const Vec3& unit_direction) const;
  const Area& area(int id) const { return areas_.at(static_cast<size_t>(id - 1)); }
  const std::vector<Area>& areas() const { return areas_; }
  // Pairs (a < b) of areas that share a border on the sphere.
  std::vector<std::pair<int, int>> Adjacency() const;

 private:
  uint64_t seed_;
  std::vector<Area> areas_;
  std::array<Vec3, 3> border_waves_;
};

// What the model holds at one point of MNI space.
struct TissuePoint {
  // Signed distance below the pial surface in mm (negative outside the brain or in a
  // ventricle), divided by the local cortical thickness: 0 at the pial surface, 1 at the
  // grey/white boundary, > 1 in white matter.
  double depth = -1;
  int area = 0;
  Hemisphere hemisphere = Hemisphere::kLeft;
  bool in_ventricle = false;
};

// Layer 1..6 at a depth in [0, 1) for a profile; 7 (white matter) at depth >= 1, 0 outside.
int LayerAt(const LaminarProfile& profile, double depth);

class PhantomBrain {
 public:
  PhantomBrain(const PhantomAtlas& atlas, uint64_t seed, int brain_index);

  TissuePoint At(const Vec3& mni) const;
  const PhantomAtlas& atlas() const { return *atlas_; }
  int index() const { return index_; }
  uint64_t seed() const { return seed_; }

 private:
  // Radial "inside" measure in mm (positive inside the pial surface) of one hemisphere.
  double Implicit(const Vec3& p, Hemisphere h, Vec3* unit_direction) const;

  const PhantomAtlas* atlas_;
  uint64_t seed_;
  int index_;
  static constexpr int kFoldWaves = 5;
  std::array<Vec3, kFoldWaves> fold_waves_;  // direction × spatial frequency
  std::array<double, kFoldWaves> fold_phase_;
  double fold_amplitude_;
};

struct PhantomOptions {
  uint64_t seed = 1;
  int num_brains = 2;
  int sections_per_brain = 3;
  int64_t width = 2048;  // level-0 pixels of every section
  int64_t height = 1536;
  int areas_per_hemisphere = 16;
  // false ("fit", the default): the whole coronal cut is shrunk to fit width × height,
  // cells alike, and pixel_size_um is only what the slides state (the I/O benchmarks use
  // this: big images of a whole brain). true: the brain is drawn at its true size,
  // pixel_size_um per pixel: cortex 2–3 mm thick, cells 3–9 µm in radius (below a pixel
  // at coarse pixel sizes, then drawn by the area they cover); the image shows whatever of
  // the cut fits, centred.
  bool true_scale = false;
  double pixel_size_um = 1.0;
  double point_spacing_mm = 1.0;  // along the cortical midline
};

struct SectionSpec {
  int brain_index = 0;
  std::string brain;    // "PB01"
  std::string section;  // four digits, increasing from posterior to anterior
  double y_mm = 0;      // coronal position of the cut
  int64_t width = 0, height = 0;
  SectionTransform transform;
  double true_pixel_size_um = 0;            // > 0: drawn at true scale (PhantomOptions)
  double stain_gain = 1, stain_offset = 0;  // brain × section staining
  std::array<double, 4> illumination{};     // low-frequency brightness gradient
  uint64_t seed = 0;                        // for cells, vessels and noise
};

// The sections of a study, deterministic from the options.
std::vector<SectionSpec> PlanStudy(const PhantomOptions& options);

struct SamplingPoint {
  int64_t id = 0;
  double x_px = 0, y_px = 0;  // level-0 section pixels (column, row)
  int area = 0;               // ground truth of the place the point was meant for
  int layer = 0;
  Hemisphere hemisphere = Hemisphere::kLeft;
  bool displaced = false;  // a simulated registration error, may lie off tissue
};

// Renders one section. Thread-safe: Render may run concurrently on different regions.
class SectionRenderer {
 public:
  SectionRenderer(const PhantomBrain& brain, SectionSpec spec);

  const SectionSpec& spec() const { return spec_; }
  // Grey pixels of rows [y0, y0+h) × columns [x0, x0+w), row-major with stride w. Slide
  // background is exactly 255.
  void Render(int64_t y0, int64_t x0, int64_t h, int64_t w, uint8_t* out) const;
  // Mask labels (0 background, 1..6 layers, 7 white matter) of the same region.
  void RenderLayerMask(int64_t y0, int64_t x0, int64_t h, int64_t w, uint8_t* out) const;
  // Points along the cortical midline (depth 0.5), about `spacing_mm` apart.
  std::vector<SamplingPoint> MidlinePoints(double spacing_mm) const;
  TissuePoint AtPixel(double col, double row) const;

 private:
  struct Field;
  Field SampleField(int64_t y0, int64_t x0, int64_t h, int64_t w) const;

  const PhantomBrain* brain_;
  SectionSpec spec_;
  double px_per_um_;         // cells and vessels scale with the brain's size in the image
  int64_t node_spacing_px_;  // of the coarse geometry grid
};

}  // namespace cytonet::phantom
