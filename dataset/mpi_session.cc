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

int LocalRank() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID", "LOCAL_RANK"}) {
    if (const char* value = std::getenv(name)) return std::atoi(value);
  }
  return 0;
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
  ASSIGN_OR_RETURN(auto file, MpiSharedFile::Open(*this, path));
  RETURN_IF_ERROR(file->WriteAtAll(offset, data, size));
  return file->Sync();
}

struct MpiSharedFile::Handle {
  MPI_File file;
};

Result<std::unique_ptr<MpiSharedFile>> MpiSharedFile::Open(MpiSession& session, const std::string& path) {
  MPI_File file;
  const int rc = MPI_File_open(MPI_COMM_WORLD, path.c_str(), MPI_MODE_CREATE | MPI_MODE_RDWR, MPI_INFO_NULL, &file);
  RETURN_IF_ERROR(session.Agree(rc == MPI_SUCCESS ? Status::Ok() : IOError("MPI-IO cannot open '" + path + "'")));
  std::unique_ptr<MpiSharedFile> shared(new MpiSharedFile(path));
  shared->handle_ = std::make_unique<Handle>(Handle{file});
  return shared;
}

MpiSharedFile::MpiSharedFile(std::string path) : path_(std::move(path)) {}

MpiSharedFile::~MpiSharedFile() {
  if (handle_) MPI_File_close(&handle_->file);
}

Status MpiSharedFile::Resize(int64_t bytes) {
  // set_size is collective: every rank must decide alike, so the sizes they see and any
  // failure to see one are agreed on first.
  MPI_Offset now = 0;
  int error = MPI_File_get_size(handle_->file, &now);
  int64_t seen[2] = {error == MPI_SUCCESS ? -int64_t(now) : 0, error == MPI_SUCCESS ? 0 : 1};  // -min size, failures
  MPI_Allreduce(MPI_IN_PLACE, seen, 2, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
  if (seen[1] > 0) return IOError("MPI-IO cannot read the size of '" + path_ + "'");
  int64_t wanted = bytes;
  MPI_Allreduce(MPI_IN_PLACE, &wanted, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
  if (wanted > -seen[0]) error = MPI_File_set_size(handle_->file, MPI_Offset(wanted));
  MPI_Allreduce(MPI_IN_PLACE, &error, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (error != MPI_SUCCESS)
    return IOError("MPI-IO cannot resize '" + path_ + "' to " + std::to_string(bytes) + " bytes");
  return Status::Ok();
}

Status MpiSharedFile::WriteAtAll(int64_t offset, const uint8_t* data, int64_t size) {
  MPI_Status status;
  // Counts are ints in MPI: large slices go in pieces of at most 1 GiB, collectively, so
  // every rank makes the same number of calls.
  constexpr int64_t kPiece = int64_t(1) << 30;
  int64_t pieces = (size + kPiece - 1) / kPiece;
  MPI_Allreduce(MPI_IN_PLACE, &pieces, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
  int error = MPI_SUCCESS;
  for (int64_t p = 0; p < pieces; ++p) {
    const int64_t begin = std::min(size, p * kPiece), end = std::min(size, (p + 1) * kPiece);
    const int e = MPI_File_write_at_all(handle_->file, MPI_Offset(offset + begin), data + begin, int(end - begin),
                                        MPI_BYTE, &status);
    if (e != MPI_SUCCESS) error = e;
  }
  MPI_Allreduce(MPI_IN_PLACE, &error, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (error != MPI_SUCCESS) return IOError("MPI-IO write to '" + path_ + "' failed");
  return Status::Ok();
}

Status MpiSharedFile::WriteAt(int64_t offset, const uint8_t* data, int64_t size) {
  MPI_Status status;
  int written = 0;
  if (size > INT32_MAX ||
      MPI_File_write_at(handle_->file, MPI_Offset(offset), data, int(size), MPI_BYTE, &status) != MPI_SUCCESS ||
      MPI_Get_count(&status, MPI_BYTE, &written) != MPI_SUCCESS || written != size) {
    return IOError("MPI-IO write of " + std::to_string(size) + " bytes at " + std::to_string(offset) + " of '" + path_ +
                   "' failed");
  }
  return Status::Ok();
}

Status MpiSharedFile::ReadAt(int64_t offset, uint8_t* out, int64_t size) const {
  MPI_Status status;
  int read = 0;
  if (size > INT32_MAX ||
      MPI_File_read_at(handle_->file, MPI_Offset(offset), out, int(size), MPI_BYTE, &status) != MPI_SUCCESS ||
      MPI_Get_count(&status, MPI_BYTE, &read) != MPI_SUCCESS || read != size) {
    return IOError("MPI-IO read of " + std::to_string(size) + " bytes at " + std::to_string(offset) + " of '" + path_ +
                   "' came short");
  }
  return Status::Ok();
}

Status MpiSharedFile::Sync() {
  int error = MPI_File_sync(handle_->file);
  MPI_Allreduce(MPI_IN_PLACE, &error, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (error != MPI_SUCCESS) return IOError("MPI-IO cannot sync '" + path_ + "'");
  return Status::Ok();
}

}  // namespace cytonet
