#include "eval/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace cytonet::eval::plot {
namespace {

const cv::Scalar kBlack(0, 0, 0), kGrey(160, 160, 160), kLight(230, 230, 230), kWhite(255, 255, 255);
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

// matplotlib's tab20 (BGR), so categories look as users expect.
cv::Scalar CategoryColour(int64_t i) {
  static const int rgb[20][3] = {{31, 119, 180},  {174, 199, 232}, {255, 127, 14},  {255, 187, 120}, {44, 160, 44},
                                 {152, 223, 138}, {214, 39, 40},   {255, 152, 150}, {148, 103, 189}, {197, 176, 213},
                                 {140, 86, 75},   {196, 156, 148}, {227, 119, 194}, {247, 182, 210}, {127, 127, 127},
                                 {199, 199, 199}, {188, 189, 34},  {219, 219, 141}, {23, 190, 207},  {158, 218, 229}};
  const int* c = rgb[((i % 20) + 20) % 20];
  return cv::Scalar(c[2], c[1], c[0]);
}

// viridis-like scale: dark blue → green → yellow.
cv::Scalar ScaleColour(double t) {
  t = std::clamp(t, 0.0, 1.0);
  static const double stops[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
  const double p = t * 4;
  const int i = std::min(3, int(p));
  const double f = p - i;
  double rgb[3];
  for (int k = 0; k < 3; ++k) rgb[k] = stops[i][k] * (1 - f) + stops[i + 1][k] * f;
  return cv::Scalar(rgb[2], rgb[1], rgb[0]);
}

void Text(cv::Mat& image, const std::string& text, cv::Point at, double scale = 0.45, int thickness = 1,
          cv::Scalar colour = kBlack) {
  cv::putText(image, text, at, kFont, scale, colour, thickness, cv::LINE_AA);
}

int TextWidth(const std::string& text, double scale = 0.45) {
  int baseline = 0;
  return cv::getTextSize(text, kFont, scale, 1, &baseline).width;
}

std::string Number(double v) {
  if (std::abs(v) < 1e-12) v = 0;  // no "-0" on an axis
  char buffer[32];
  if (v != 0 && (std::abs(v) >= 1e5 || std::abs(v) < 1e-3)) {
    std::snprintf(buffer, sizeof buffer, "%.1e", v);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.4g", v);
  }
  return buffer;
}

// About 5 round tick values covering [low, high].
std::vector<double> Ticks(double low, double high) {
  const double span = high - low;
  if (!(span > 0)) return {low};
  const double raw = span / 5, magnitude = std::pow(10, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (raw <= m * magnitude) {
      step = m * magnitude;
      break;
    }
  }
  std::vector<double> ticks;
  for (double t = std::ceil(low / step) * step; t <= high + step * 1e-9; t += step) ticks.push_back(t);
  return ticks;
}

Status Write(const std::string& path, const cv::Mat& image) {
  try {
    if (cv::imwrite(path, image)) return Status::Ok();
  } catch (const cv::Exception& e) {
    return IOError("writing plot '" + path + "': " + e.what());
  }
  return IOError("writing plot '" + path + "' failed");
}

// A plotting frame: data ranges mapped into a canvas with margins, axes and ticks drawn.
struct Frame {
  cv::Mat image;
  cv::Rect area;
  double x0, x1, y0, y1;

  Frame(const Axes& axes, double xmin, double xmax, double ymin, double ymax, int legend_width = 0, bool x_ticks = true)
      : image(480, std::max(720 + legend_width, TextWidth(axes.title, 0.6) + 90), CV_8UC3, kWhite),
        area(70, 40, 620, 380) {
    auto pad = [](double& lo, double& hi) {
      if (!(hi > lo)) lo -= 0.5, hi += 0.5;
      const double m = 0.04 * (hi - lo);
      lo -= m, hi += m;
    };
    x0 = xmin, x1 = xmax, y0 = ymin, y1 = ymax;
    pad(x0, x1);
    pad(y0, y1);
    Text(image, axes.title, {area.x, 25}, 0.6, 1);
    cv::rectangle(image, area, kBlack, 1);
    for (double t : x_ticks ? Ticks(x0, x1) : std::vector<double>{}) {
      const int px = X(t);
      cv::line(image, {px, area.y}, {px, area.y + area.height}, kLight, 1);
      cv::line(image, {px, area.y + area.height}, {px, area.y + area.height + 5}, kBlack, 1);
      Text(image, Number(t), {px - TextWidth(Number(t)) / 2, area.y + area.height + 20});
    }
    for (double t : Ticks(y0, y1)) {
      const int py = Y(t);
      cv::line(image, {area.x, py}, {area.x + area.width, py}, kLight, 1);
      cv::line(image, {area.x - 5, py}, {area.x, py}, kBlack, 1);
      Text(image, Number(t), {area.x - 8 - TextWidth(Number(t)), py + 5});
    }
    cv::rectangle(image, area, kBlack, 1);
    Text(image, axes.x_label, {area.x + area.width / 2 - TextWidth(axes.x_label) / 2, area.y + area.height + 45});
    // The y label, written sideways.
    cv::Mat label(20, std::max(1, TextWidth(axes.y_label) + 4), CV_8UC3, kWhite);
    Text(label, axes.y_label, {2, 15});
    cv::Mat turned;
    cv::rotate(label, turned, cv::ROTATE_90_COUNTERCLOCKWISE);
    const int top = std::max(0, area.y + area.height / 2 - turned.rows / 2);
    if (top + turned.rows <= image.rows) turned.copyTo(image(cv::Rect(5, top, turned.cols, turned.rows)));
  }
  int X(double v) const { return area.x + int(std::lround((v - x0) / (x1 - x0) * area.width)); }
  int Y(double v) const { return area.y + area.height - int(std::lround((v - y0) / (y1 - y0) * area.height)); }
  void Legend(const std::vector<std::string>& names, const std::vector<cv::Scalar>& colours) {
    const int x = area.x + area.width + 15;
    for (size_t i = 0; i < names.size() && 50 + int(i) * 18 < image.rows; ++i) {
      cv::rectangle(image, cv::Rect(x, 40 + int(i) * 18, 12, 12), colours[i], cv::FILLED);
      Text(image, names[i], {x + 18, 51 + int(i) * 18}, 0.42);
    }
  }
};

void Range(const std::vector<double>& v, double& low, double& high) {
  for (double x : v) {
    if (std::isfinite(x)) low = std::min(low, x), high = std::max(high, x);
  }
}

}  // namespace

Status LineChart(const std::string& path, const Axes& axes, const std::vector<Series>& series) {
  double xl = std::numeric_limits<double>::infinity(), xh = -xl, yl = xl, yh = -xl;
  int legend = 0;
  for (const Series& s : series) {
    Range(s.x, xl, xh), Range(s.y, yl, yh);
    legend = std::max(legend, TextWidth(s.label, 0.42) + 45);
  }
  if (!std::isfinite(xl)) return InvalidArgumentError("plot '" + path + "': no finite points");
  Frame f(axes, xl, xh, yl, yh, series.size() > 1 ? legend : 0);
  std::vector<std::string> names;
  std::vector<cv::Scalar> colours;
  for (size_t k = 0; k < series.size(); ++k) {
    const Series& s = series[k];
    std::vector<cv::Point> points;
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) points.push_back({f.X(s.x[i]), f.Y(s.y[i])});
    }
    cv::polylines(f.image, points, false, CategoryColour(int64_t(2 * k)), 2, cv::LINE_AA);
    if (points.size() < 30) {
      for (const auto& p : points) cv::circle(f.image, p, 3, CategoryColour(int64_t(2 * k)), cv::FILLED, cv::LINE_AA);
    }
    names.push_back(s.label), colours.push_back(CategoryColour(int64_t(2 * k)));
  }
  if (series.size() > 1) f.Legend(names, colours);
  return Write(path, f.image);
}

Status ScatterChart(const std::string& path, const Axes& axes, const std::vector<double>& x,
                    const std::vector<double>& y, const std::vector<int64_t>& category,
                    const std::vector<std::string>& names) {
  if (x.size() != y.size() || x.size() != category.size()) {
    return InvalidArgumentError("plot '" + path + "': x, y and categories differ in length");
  }
  double xl = std::numeric_limits<double>::infinity(), xh = -xl, yl = xl, yh = -xl;
  Range(x, xl, xh), Range(y, yl, yh);
  if (!std::isfinite(xl)) return InvalidArgumentError("plot '" + path + "': no finite points");
  int legend = 0;
  for (const auto& n : names) legend = std::max(legend, TextWidth(n, 0.42) + 45);
  Frame f(axes, xl, xh, yl, yh, legend);
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isfinite(x[i]) && std::isfinite(y[i])) {
      cv::circle(f.image, {f.X(x[i]), f.Y(y[i])}, 2, CategoryColour(category[i]), cv::FILLED, cv::LINE_AA);
    }
  }
  std::vector<cv::Scalar> colours;
  for (size_t i = 0; i < names.size(); ++i) colours.push_back(CategoryColour(int64_t(i)));
  f.Legend(names, colours);
  return Write(path, f.image);
}

Status Heatmap(const std::string& path, const Axes& axes, const std::vector<double>& values, int64_t rows, int64_t cols,
               const std::vector<std::string>& row_labels, const std::vector<std::string>& col_labels, double low,
               double high, bool annotate) {
  if (rows < 1 || cols < 1 || values.size() != size_t(rows * cols)) {
    return InvalidArgumentError("plot '" + path + "': " + std::to_string(values.size()) + " values for " +
                                std::to_string(rows) + " × " + std::to_string(cols));
  }
  const int cell = int(std::clamp<int64_t>(560 / std::max(rows, cols), 6, 48));
  int label_width = 0;
  for (const auto& l : row_labels) label_width = std::max(label_width, TextWidth(l, 0.4));
  const cv::Point origin(label_width + 20, 50);
  const int width = origin.x + int(cols) * cell + 120, height = origin.y + int(rows) * cell + 80;
  cv::Mat image(std::max(height, 300), std::max({width, 420, TextWidth(axes.title, 0.6) + 20}), CV_8UC3, kWhite);
  Text(image, axes.title, {10, 25}, 0.6);
  const bool labelled = cell >= 12;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const double v = values[size_t(r * cols + c)];
      const cv::Rect box(origin.x + int(c) * cell, origin.y + int(r) * cell, cell, cell);
      const double t = high > low ? (v - low) / (high - low) : 0.5;
      cv::rectangle(image, box, std::isnan(v) ? kGrey : ScaleColour(t), cv::FILLED);
      if (annotate && cell >= 24 && !std::isnan(v)) {
        const std::string s = Number(v);
        Text(image, s, {box.x + cell / 2 - TextWidth(s, 0.35) / 2, box.y + cell / 2 + 4}, 0.35, 1,
             t > 0.6 ? kBlack : kWhite);
      }
    }
    if (labelled && size_t(r) < row_labels.size()) {
      Text(image, row_labels[size_t(r)], {10, origin.y + int(r) * cell + cell / 2 + 5}, 0.4);
    }
  }
  if (labelled) {
    for (int64_t c = 0; c < cols && size_t(c) < col_labels.size(); ++c) {
      cv::Mat label(16, std::max(1, TextWidth(col_labels[size_t(c)], 0.4) + 4), CV_8UC3, kWhite);
      Text(label, col_labels[size_t(c)], {2, 12}, 0.4);
      cv::Mat turned;
      cv::rotate(label, turned, cv::ROTATE_90_COUNTERCLOCKWISE);
      const int x = origin.x + int(c) * cell + cell / 2 - 8, y = origin.y + int(rows) * cell + 4;
      if (y + turned.rows <= image.rows && x + turned.cols <= image.cols) {
        turned.copyTo(image(cv::Rect(x, y, turned.cols, turned.rows)));
      }
    }
  }
  Text(image, axes.x_label, {origin.x, image.rows - 8}, 0.45);
  // The colour scale.
  const int sx = origin.x + int(cols) * cell + 20, sh = std::max(100, int(rows) * cell);
  for (int i = 0; i < sh; ++i) {
    cv::line(image, {sx, origin.y + i}, {sx + 15, origin.y + i}, ScaleColour(1.0 - double(i) / sh));
  }
  Text(image, Number(high), {sx + 20, origin.y + 10}, 0.4);
  Text(image, Number(low), {sx + 20, origin.y + sh}, 0.4);
  return Write(path, image);
}

Status BarChart(const std::string& path, const Axes& axes, const std::vector<std::string>& categories,
                const std::vector<double>& values) {
  if (categories.size() != values.size() || values.empty()) {
    return InvalidArgumentError("plot '" + path + "': categories and values differ or are empty");
  }
  double yl = 0, yh = 0;
  Range(values, yl, yh);
  Frame f(axes, -0.5, double(values.size()) - 0.5, yl, yh, 0, /*x_ticks=*/false);
  const double width = 0.7 * f.area.width / double(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    const int cx = f.X(double(i));
    cv::rectangle(f.image, cv::Point(cx - int(width / 2), f.Y(0)), cv::Point(cx + int(width / 2), f.Y(values[i])),
                  CategoryColour(0), cv::FILLED);
    Text(f.image, categories[i], {cx - TextWidth(categories[i], 0.45) / 2, f.area.y + f.area.height + 20});
  }
  return Write(path, f.image);
}

Status ImageRow(const std::string& path, const std::string& title, const std::vector<Panel>& panels,
                const std::vector<std::string>& label_names) {
  int width = 10, height = 0;
  for (const Panel& p : panels) {
    if (p.pixels.size() != size_t(p.width * p.height)) {
      return InvalidArgumentError("plot '" + path + "': panel '" + p.caption + "' has the wrong pixel count");
    }
    width += int(p.width) + 10, height = std::max(height, int(p.height));
  }
  int legend = 0;
  for (const auto& n : label_names) legend = std::max(legend, TextWidth(n, 0.42) + 40);
  cv::Mat image(height + 80, std::max(width + legend, TextWidth(title, 0.6) + 20), CV_8UC3, kWhite);
  Text(image, title, {10, 25}, 0.6);
  int x = 10;
  for (const Panel& p : panels) {
    cv::Mat out(int(p.height), int(p.width), CV_8UC3);
    for (int64_t r = 0; r < p.height; ++r) {
      for (int64_t c = 0; c < p.width; ++c) {
        const uint8_t v = p.pixels[size_t(r * p.width + c)];
        const cv::Scalar s = p.labels ? CategoryColour(v) : cv::Scalar(v, v, v);
        out.at<cv::Vec3b>(int(r), int(c)) = cv::Vec3b(uint8_t(s[0]), uint8_t(s[1]), uint8_t(s[2]));
      }
    }
    out.copyTo(image(cv::Rect(x, 40, out.cols, out.rows)));
    Text(image, p.caption, {x, 40 + height + 25}, 0.45);
    x += int(p.width) + 10;
  }
  for (size_t i = 0; i < label_names.size(); ++i) {
    cv::rectangle(image, cv::Rect(x + 5, 40 + int(i) * 18, 12, 12), CategoryColour(int64_t(i)), cv::FILLED);
    Text(image, label_names[i], {x + 23, 51 + int(i) * 18}, 0.42);
  }
  return Write(path, image);
}

}  // namespace cytonet::eval::plot
