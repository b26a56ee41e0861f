#include "loader/sampler.h"

#include "ingest/point_index.h"
#include "loader/counter_rng.h"
