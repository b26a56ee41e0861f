// Boxes in array index space and copies between C-order buffers that cover boxes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "store/bytes.h"

namespace cytonet {

// The half-open box [origin, origin + shape) of an N-dimensional index space.
struct Box {
  std::vector<int64_t> origin;
  std::vector<int64_t> shape;

  size_t rank() const { return shape.size(); }
  int64_t num_elements() const;
  bool empty() const { return num_elements() == 0; }
  bool Contains(const Box& other) const;
  std::string ToString() const;  // "[0:512, 1024:1536]"
  bool operator==(const Box&) const = default;
};

std::optional<Box> Intersect(const Box& a, const Box& b);

// Copies the elements of `region` from `src` (a C-order buffer covering `src_box`) into
// `dst` (covering `dst_box`). `region` lies inside both boxes. Rows along the last axis
// are copied with memcpy.
void CopyRegion(const uint8_t* src, const Box& src_box, uint8_t* dst, const Box& dst_box, const Box& region,
                size_t item_size);

// Sets every element of `region` inside `dst` (covering `dst_box`) to `fill_value`.
void FillRegion(uint8_t* dst, const Box& dst_box, const Box& region, ByteSpan fill_value);

// True if every element of `data` equals `fill_value` (one element's bytes).
bool AllEqual(ByteSpan data, ByteSpan fill_value);

}  // namespace cytonet
