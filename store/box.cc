#include "store/box.h"

#include <algorithm>
#include <cstring>

namespace cytonet {

int64_t Box::num_elements() const {
  int64_t n = 1;
  for (int64_t extent : shape) n *= extent;
  return n;
}

bool Box::Contains(const Box& other) const {
  for (size_t d = 0; d < rank(); ++d) {
    if (other.origin[d] < origin[d] || other.origin[d] + other.shape[d] > origin[d] + shape[d]) {
      return false;
    }
  }
  return true;
}

std::string Box::ToString() const {
  std::string s = "[";
  for (size_t d = 0; d < rank(); ++d) {
    if (d) s += ", ";
    s += std::to_string(origin[d]) + ":" + std::to_string(origin[d] + shape[d]);
  }
  return s + "]";
}

std::optional<Box> Intersect(const Box& a, const Box& b) {
  Box r;
  for (size_t d = 0; d < a.rank(); ++d) {
    int64_t lo = std::max(a.origin[d], b.origin[d]);
    int64_t hi = std::min(a.origin[d] + a.shape[d], b.origin[d] + b.shape[d]);
    if (hi <= lo) return std::nullopt;
    r.origin.push_back(lo);
    r.shape.push_back(hi - lo);
  }
  return r;
}

namespace {

// Calls row(src_offset, dst_offset) (element offsets) for every last-axis row of `region`.
template <typename RowFn>
void ForEachRow(const Box& a_box, const Box& b_box, const Box& region, RowFn row) {
  const size_t rank = region.rank();
  if (rank == 0) {
    row(0, 0);
    return;
  }
  std::vector<int64_t> a_stride(rank, 1), b_stride(rank, 1);
  for (size_t d = rank - 1; d > 0; --d) {
    a_stride[d - 1] = a_stride[d] * a_box.shape[d];
    b_stride[d - 1] = b_stride[d] * b_box.shape[d];
  }
  int64_t a_base = 0, b_base = 0;
  for (size_t d = 0; d < rank; ++d) {
    a_base += (region.origin[d] - a_box.origin[d]) * a_stride[d];
    b_base += (region.origin[d] - b_box.origin[d]) * b_stride[d];
  }
  std::vector<int64_t> index(rank - 1, 0);
  while (true) {
    int64_t a = a_base, b = b_base;
    for (size_t d = 0; d + 1 < rank; ++d) {
      a += index[d] * a_stride[d];
      b += index[d] * b_stride[d];
    }
    row(a, b);
    size_t d = rank - 1;
    while (d > 0) {
      --d;
      if (++index[d] < region.shape[d]) break;
      index[d] = 0;
      if (d == 0) return;
    }
    if (rank == 1) return;
  }
}

}  // namespace

void CopyRegion(const uint8_t* src, const Box& src_box, uint8_t* dst, const Box& dst_box, const Box& region,
                size_t item_size) {
  if (region.empty()) return;
  const size_t row_bytes = region.rank() ? region.shape.back() * item_size : item_size;
  ForEachRow(src_box, dst_box, region,
             [&](int64_t s, int64_t d) { std::memcpy(dst + d * item_size, src + s * item_size, row_bytes); });
}

void FillRegion(uint8_t* dst, const Box& dst_box, const Box& region, ByteSpan fill_value) {
  if (region.empty()) return;
  const size_t item = fill_value.size();
  const int64_t row_elements = region.rank() ? region.shape.back() : 1;
  const bool uniform = std::all_of(fill_value.begin(), fill_value.end(), [&](uint8_t b) { return b == fill_value[0]; });
  ForEachRow(dst_box, dst_box, region, [&](int64_t, int64_t d) {
    uint8_t* row = dst + d * item;
    if (uniform) {
      std::memset(row, fill_value[0], row_elements * item);
    } else {
      for (int64_t i = 0; i < row_elements; ++i) std::memcpy(row + i * item, fill_value.data(), item);
    }
  });
}

bool AllEqual(ByteSpan data, ByteSpan fill_value) {
  const size_t item = fill_value.size();
  if (item == 1) {
    const uint8_t v = fill_value[0];
    // memcmp against a shifted self: data[i] == data[i+1] for all i and data[0] == v.
    return data.empty() || (data[0] == v && std::memcmp(data.data(), data.data() + 1, data.size() - 1) == 0);
  }
  for (size_t i = 0; i + item <= data.size(); i += item) {
    if (std::memcmp(data.data() + i, fill_value.data(), item) != 0) return false;
  }
  return true;
}

}  // namespace cytonet
