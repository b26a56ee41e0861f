// The report's plots as PNG files, drawn with OpenCV (no plotting runtime needed on a
// cluster node): line charts, scatter plots coloured by category, heatmaps, bar charts and
// rows of images. Every chart has a title, labelled axes with ticks, and a legend where
// colours carry meaning. Errors name the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "store/status.h"

namespace cytonet::eval::plot {

struct Series {
  std::string label;
  std::vector<double> x, y;
};

struct Axes {
  std::string title, x_label, y_label;
};

// Lines through (x, y) of each series.
Status LineChart(const std::string& path, const Axes& axes, const std::vector<Series>& series);

// Points (x[i], y[i]) coloured by category[i] (0 … names.size() − 1), with a legend of
// the names (up to 20 colours, then repeated).
Status ScatterChart(const std::string& path, const Axes& axes, const std::vector<double>& x,
                    const std::vector<double>& y, const std::vector<int64_t>& category,
                    const std::vector<std::string>& names);

// rows × cols values (row-major; NaN drawn grey) on a colour scale from `low` to `high`,
// with row and column labels, the scale beside it and, when `annotate`, each value written.
Status Heatmap(const std::string& path, const Axes& axes, const std::vector<double>& values, int64_t rows, int64_t cols,
               const std::vector<std::string>& row_labels, const std::vector<std::string>& col_labels, double low,
               double high, bool annotate);

// One bar per category.
Status BarChart(const std::string& path, const Axes& axes, const std::vector<std::string>& categories,
                const std::vector<double>& values);

// Images side by side, each with a caption: grey images (`labels` false) or label maps
// (small integers, drawn in the category colours, with a legend of `label_names`).
struct Panel {
  std::string caption;
  int64_t width = 0, height = 0;
  std::vector<uint8_t> pixels;  // row-major
  bool labels = false;
};
Status ImageRow(const std::string& path, const std::string& title, const std::vector<Panel>& panels,
                const std::vector<std::string>& label_names);

}  // namespace cytonet::eval::plot
