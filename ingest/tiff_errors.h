// libtiff reports errors through a process-wide handler; this one keeps the last message
// per thread so readers and writers can put it into a Status that names the file.
#pragma once

#include <string>

namespace cytonet {

// Installs the handler (once per process) and silences libtiff's warnings.
void CaptureTiffErrors();
// The last libtiff error message of this thread ("" if none), cleared by the call.
std::string TakeTiffError();

}  // namespace cytonet
