// Fuzzes the files a lab hands to ingest and index: the study file, transform files and
// points CSVs. Every input must give a value or a clear error, never a crash. The first
// byte picks the parser.
#include <cstddef>
#include <cstdint>
#include <string>

#include "ingest/points_csv.h"
#include "ingest/section_transform.h"
#include "ingest/study.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cytonet;
  if (size == 0) return 0;
  const uint8_t which = data[0] % 3;
  const ByteSpan rest(data + 1, size - 1);
  if (which == 2) {
    auto points = ParsePointsCsv(std::string(reinterpret_cast<const char*>(rest.data()), rest.size()), "fuzz.csv");
    if (points.ok()) {
      for (const SectionPoint& p : *points) (void)p.x_px;
    }
    return 0;
  }
  auto json = ParseJson(rest, "fuzz.json");
  if (!json.ok()) return 0;
  if (which == 0) {
    auto transform = ParseTransform(*json, "fuzz.json");
    if (transform.ok()) (void)transform->Apply(1.5, 2.5);  // exercises the displacement field
  } else {
    auto study = ParseStudy(*json, "/data/study.json");
    if (study.ok()) (void)study->sections.size();
  }
  return 0;
}
