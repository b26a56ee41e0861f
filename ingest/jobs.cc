#include "ingest/jobs.h"

#include <unistd.h>

#include <cstdio>
#include <map>
#include <optional>

#include "dataset/dataset.h"
#include "dataset/lock.h"
#include "dataset/mpi_session.h"

namespace cytonet {
namespace {

// An MPI session when launched by mpirun/srun, else null; `tasks` is the size of the
// shared work counter.
Result<std::unique_ptr<MpiSession>> MaybeStartMpi(int64_t tasks) {
  if (!LaunchedUnderMpi()) return std::unique_ptr<MpiSession>();
  return MpiSession::Start(nullptr, nullptr, tasks);
}

// Every rank's outcomes, gathered on rank 0 in study order.
std::vector<SectionOutcome> GatherOutcomes(MpiSession& mpi, const Study& study,
                                           const std::vector<SectionOutcome>& mine) {
  Json list = Json::array();
  for (const SectionOutcome& outcome : mine) list.push_back(outcome.ToJson());
  // Error texts may quote bytes from damaged files: replace invalid UTF-8.
  const std::vector<std::string> all = mpi.GatherToRoot(list.dump(-1, ' ', false, Json::error_handler_t::replace));
  if (mpi.rank() != 0) return {};
  std::map<std::string, SectionOutcome> by_name;
  for (const std::string& text : all) {
    auto parsed = ParseJson(AsBytes(text), "section outcomes of a rank");
    if (!parsed.ok() || !parsed->is_array()) continue;
    for (const Json& j : *parsed) {
      if (auto outcome = SectionOutcome::FromJson(j); outcome.ok())
        by_name[outcome->brain + "/" + outcome->section] = *outcome;
    }
  }
  std::vector<SectionOutcome> outcomes;
  for (const StudySection& section : study.sections) outcomes.push_back(by_name[section.Name()]);
  return outcomes;
}

// The dataset's root lock for `purpose`, taken on rank 0 only (`take`); other ranks get OK
// and no lock.
Status TakeRootLock(bool take, const std::string& dataset_root, const std::string& purpose,
                    std::optional<DatasetLock>* lock) {
  if (!take) return Status::Ok();
  auto taken = DatasetLock::Acquire(dataset_root, "root", purpose);
  if (!taken.ok()) return taken.status();
  lock->emplace(std::move(*taken));
  return Status::Ok();
}

}  // namespace

Status RunIngestJob(std::shared_ptr<KvStore> dataset, const std::string& dataset_root, const Study& study,
                    IngestOptions options, IngestJobResult* result) {
  ASSIGN_OR_RETURN(std::unique_ptr<MpiSession> mpi, MaybeStartMpi(int64_t(study.sections.size())));
  result->rank = mpi ? mpi->rank() : 0;
  result->ranks = mpi ? mpi->size() : 1;
  const bool root = result->rank == 0;
  // One writer job per dataset: rank 0 holds the root lock for the whole run, every rank
  // locks the section it writes.
  const bool writable = ::access(dataset_root.c_str(), W_OK) == 0;
  if (writable) options.lock_root = dataset_root;
  std::optional<DatasetLock> lock;
  Status prepared = TakeRootLock(root && writable, dataset_root, "cytonet ingest", &lock);
  if (root && lock) prepared = RemoveStaleTemporaries(dataset_root);
  if (root && prepared.ok()) prepared = PrepareDataset(*dataset);
  // Every rank learns whether rank 0 could prepare, so none waits in a collective.
  RETURN_IF_ERROR(mpi ? mpi->Agree(prepared) : prepared);

  std::vector<SectionOutcome> outcomes;
  for (int64_t i = mpi ? mpi->Next() : 0; i >= 0 && i < int64_t(study.sections.size()); i = mpi ? mpi->Next() : i + 1) {
    const StudySection& section = study.sections[size_t(i)];
    outcomes.push_back(IngestSection(dataset, section, options));
    if (outcomes.back().state == SectionState::kFailed && options.progress) {
      std::fprintf(stderr, "[ingest] %s failed: %s\n", section.Name().c_str(),
                   outcomes.back().error.ToString().c_str());
    }
  }
  if (mpi) outcomes = GatherOutcomes(*mpi, study, outcomes);
  Status finalized = root ? FinalizeDataset(*dataset, study) : Status::Ok();
  int failed = 0;
  for (const SectionOutcome& outcome : outcomes) failed += outcome.state == SectionState::kFailed;
  result->failed_sections = mpi ? mpi->Broadcast(failed) : failed;
  if (root) result->outcomes = std::move(outcomes);
  return mpi ? mpi->Agree(finalized) : finalized;
}

Status RunIndexJob(std::shared_ptr<KvStore> dataset, const std::string& dataset_root, const Study& study,
                   const IndexOptions& options, IndexJobResult* result) {
  ASSIGN_OR_RETURN(std::unique_ptr<MpiSession> mpi, MaybeStartMpi(0));
  result->rank = mpi ? mpi->rank() : 0;
  result->ranks = mpi ? mpi->size() : 1;
  const bool root = result->rank == 0;
  // No ingest or other index job may write the dataset meanwhile (rank 0 holds the lock).
  std::optional<DatasetLock> lock;
  const Status locked = TakeRootLock(root, dataset_root, "cytonet index", &lock);
  RETURN_IF_ERROR(mpi ? mpi->Agree(locked) : locked);
  auto table = BuildIndex(dataset, study, options, &result->stats, result->rank, result->ranks);
  // A failure on one rank must not leave the others waiting in a collective.
  RETURN_IF_ERROR(mpi ? mpi->Agree(table.status()) : table.status());
  // WriteIndex ends with metadata only rank 0 writes: its verdict and the transforms' are
  // agreed on together, so no rank waits in a collective that a failed rank 0 left.
  Status written = WriteIndex(dataset, *table, options, &result->stats, mpi.get(), dataset_root);
  result->sections = table->sections.size();
  if (written.ok() && root) written = WriteTransforms(*dataset, study, *table);
  return mpi ? mpi->Agree(written) : written;
}

}  // namespace cytonet
