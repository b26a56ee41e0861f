#include "dataset/mpi_session.h"

// The C API only: the deprecated C++ bindings need a library we do not link.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <cstdlib>

namespace cytonet {

bool LaunchedUnderMpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK"}) {
    if (std::getenv(name)) return true;
  }
  return false;
}

struct MpiSession::Window {
  MPI_Win win = MPI_WIN_NULL;
  int64_t* counter = nullptr;
};

Result<std::unique_ptr<MpiSession>> MpiSession::Start(int* argc, char*** argv, int64_t num_tasks) {
  int provided = 0;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    return InternalError("MPI_Init_thread failed");
  }
  std::unique_ptr<MpiSession> queue(new MpiSession());
  MPI_Comm_rank(MPI_COMM_WORLD, &queue->rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &queue->size_);
  queue->num_tasks_ = num_tasks;
  queue->window_ = std::make_unique<Window>();
  const MPI_Aint bytes = queue->rank_ == 0 ? sizeof(int64_t) : 0;
  if (MPI_Win_allocate(bytes, sizeof(int64_t), MPI_INFO_NULL, MPI_COMM_WORLD, &queue->window_->counter,
                       &queue->window_->win) != MPI_SUCCESS) {
    return InternalError("MPI_Win_allocate failed");
  }
  if (queue->rank_ == 0) {
    MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, queue->window_->win);
    *queue->window_->counter = 0;
    MPI_Win_unlock(0, queue->window_->win);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return queue;
}

MpiSession::~MpiSession() {
  if (window_ && window_->win != MPI_WIN_NULL) MPI_Win_free(&window_->win);
  MPI_Finalize();
}

int64_t MpiSession::Next() {
  const int64_t one = 1;
  int64_t task = 0;
  MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, window_->win);
  MPI_Fetch_and_op(&one, &task, MPI_INT64_T, 0, 0, MPI_SUM, window_->win);
  MPI_Win_unlock(0, window_->win);
  return task < num_tasks_ ? task : -1;
}

std::vector<std::string> MpiSession::GatherToRoot(const std::string& text) {
  int length = int(text.size());
  std::vector<int> lengths(static_cast<size_t>(size_)), offsets(static_cast<size_t>(size_));
  MPI_Gather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
  std::string all;
  if (rank_ == 0) {
    int total = 0;
    for (int r = 0; r < size_; ++r) offsets[size_t(r)] = total, total += lengths[size_t(r)];
    all.resize(size_t(total));
  }
  MPI_Gatherv(text.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR, 0, MPI_COMM_WORLD);
  std::vector<std::string> out;
  if (rank_ == 0) {
    for (int r = 0; r < size_; ++r) out.push_back(all.substr(size_t(offsets[size_t(r)]), size_t(lengths[size_t(r)])));
  }
  return out;
}

int MpiSession::Broadcast(int value) {
  MPI_Bcast(&value, 1, MPI_INT, 0, MPI_COMM_WORLD);
  return value;
}

std::string MpiSession::BroadcastString(const std::string& text) {
  const int length = Broadcast(int(text.size()));
  std::string out = rank_ == 0 ? text : std::string(size_t(length), '\0');
  MPI_Bcast(out.data(), length, MPI_CHAR, 0, MPI_COMM_WORLD);
  return out;
}

void MpiSession::Barrier() { MPI_Barrier(MPI_COMM_WORLD); }

int64_t MpiSession::ExclusiveSum(int64_t value) {
  int64_t below = 0;
  MPI_Exscan(&value, &below, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  return rank_ == 0 ? 0 : below;  // MPI_Exscan leaves rank 0's result undefined
}

std::vector<int64_t> MpiSession::SumAll(const std::vector<int64_t>& values) {
  std::vector<int64_t> sums(values.size());
  MPI_Allreduce(values.data(), sums.data(), int(values.size()), MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  return sums;
}

Status MpiSession::Agree(const Status& local) {
  const int64_t failed = SumAll({local.ok() ? 0 : 1})[0];
  if (!local.ok()) return local;
  if (failed > 0) return InternalError(std::to_string(failed) + " other MPI rank(s) failed; see their messages");
  return Status::Ok();
}

Status MpiSession::WriteAtAll(const std::string& path, int64_t offset, const uint8_t* data, int64_t size) {
  MPI_File file;
  const int rc = MPI_File_open(MPI_COMM_WORLD, path.c_str(), MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL, &file);
  RETURN_IF_ERROR(Agree(rc == MPI_SUCCESS ? Status::Ok() : IOError("MPI-IO cannot open '" + path + "'")));
  MPI_Status status;
  // Counts are ints in MPI: large slices go in pieces of at most 1 GiB, collectively, so
  // every rank makes the same number of calls.
  constexpr int64_t kPiece = int64_t(1) << 30;
  int64_t pieces = (size + kPiece - 1) / kPiece;
  MPI_Allreduce(MPI_IN_PLACE, &pieces, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
  int error = MPI_SUCCESS;
  for (int64_t p = 0; p < pieces; ++p) {
    const int64_t begin = std::min(size, p * kPiece), end = std::min(size, (p + 1) * kPiece);
    const int e =
        MPI_File_write_at_all(file, MPI_Offset(offset + begin), data + begin, int(end - begin), MPI_BYTE, &status);
    if (e != MPI_SUCCESS) error = e;
  }
  if (MPI_File_sync(file) != MPI_SUCCESS) error = MPI_ERR_IO;
  MPI_File_close(&file);
  MPI_Allreduce(MPI_IN_PLACE, &error, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (error != MPI_SUCCESS) return IOError("MPI-IO write to '" + path + "' failed");
  return Status::Ok();
}

}  // namespace cytonet
