// The distributed runtime under `mpirun -np 2` (CTest: distributed_mpirun): N ranks with B
// samples each must compute what one process computes on the N·B samples concatenated in
// rank order: loss, gradients after the all-reduce, synchronised batch-norm statistics and
// running stats, and parameters after several LARS steps. Every rank also computes the
// one-process reference itself, on the whole batch, and compares. fp64, so that 1e-9
// separates a real difference from summation order.
#include "train/distributed.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <memory>

#include "dataset/mpi_session.h"
#include "train/lars.h"
#include "train/losses.h"
#include "train/resnet.h"
#include "train/sync_batch_norm.h"

namespace cytonet::train {
namespace {

MpiSession* mpi = nullptr;

std::shared_ptr<ProcessGroup> Group() {
  static std::shared_ptr<ProcessGroup> group = ProcessGroup::Join(mpi, torch::kCPU, std::chrono::milliseconds(60'000));
  return group;
}

double MaxRelativeDifference(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item<double>();
}

// The backbone and head as the trainer builds them, in fp64 and channels-last.
struct Model {
  CytoNetResNet backbone{nullptr};
  ProjectionHead head{nullptr};
  explicit Model(uint64_t seed) {
    torch::manual_seed(seed);
    backbone = CytoNetResNet(ResNetConfig::Small());
    head = ProjectionHead(ResNetConfig::Small().feature_channels(), 32);
    backbone->to(torch::kDouble);
    head->to(torch::kDouble);
    torch::NoGradGuard no_grad;
    for (auto& p : backbone->parameters()) {
      if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
    }
  }
  std::vector<torch::Tensor> Parameters() const {
    auto all = backbone->parameters();
    for (auto& p : head->parameters()) all.push_back(p);
    return all;
  }
  std::vector<torch::Tensor> Buffers() const {
    auto all = backbone->buffers();
    for (auto& b : head->buffers()) all.push_back(b);
    return all;
  }
  torch::Tensor Project(const torch::Tensor& images) { return head->forward(backbone->Features(images)); }
  ParameterGroups Groups() const { return SplitForWeightDecay({backbone.get(), head.get()}); }
};

// The whole batch, the same on every rank.
struct Batch {
  torch::Tensor images, positions;
  Batch(int64_t samples, uint64_t seed) {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
    images = torch::rand({samples, 1, 64, 64}, generator, torch::kDouble).contiguous(torch::MemoryFormat::ChannelsLast);
    positions = torch::rand({samples, 3}, generator, torch::kDouble) * 40.0;
  }
};

TEST(Distributed, RanksAreTwo) { ASSERT_EQ(Group()->size(), 2) << "run under mpirun -np 2"; }

TEST(Distributed, AllGatherBackwardSumsEachRanksGradientForItsRows) {
  auto group = Group();
  const int64_t per_rank = 6, all = per_rank * group->size();
  auto generator = at::make_generator<at::CPUGeneratorImpl>(7);
  const auto features = torch::randn({all, 16}, generator, torch::kDouble);
  const auto positions = torch::rand({all, 3}, generator, torch::kDouble) * 30.0;

  auto whole = features.clone().requires_grad_(true);
  SpatialNceLoss(whole, positions).backward();

  const int64_t first = group->rank() * per_rank;
  auto mine = features.narrow(0, first, per_rank).clone().requires_grad_(true);
  const auto gathered = AllGatherWithGradient(group, mine);
  ASSERT_TRUE(torch::equal(gathered.detach(), features));
  SpatialNceLoss(mine, positions.narrow(0, first, per_rank), gathered, positions, first).backward();
  // Each rank's loss is the mean over its anchors: the sum of the ranks' losses is size × the
  // one-process mean, and so are the gradients.
  const auto expected = whole.grad().narrow(0, first, per_rank) * double(group->size());
  EXPECT_LT(MaxRelativeDifference(mine.grad(), expected), 1e-12);
}

TEST(Distributed, SupervisedContrastiveOverRanksIsTheOneProcessMeanWhenRanksCountDifferentAnchors) {
  auto group = Group();
  ASSERT_EQ(group->size(), 2);
  const int64_t per_rank = 6, all = 12;
  // Rank 0 has 5 anchors with a partner of their label (area 1's is on rank 1), rank 1 one.
  const auto labels = torch::tensor({0, 0, 1, 2, 3, 3, 1, 4, 5, 6, 7, 8}, torch::kLong);
  auto generator = at::make_generator<at::CPUGeneratorImpl>(9);
  const auto features = torch::randn({all, 8}, generator, torch::kDouble);
  auto whole = features.clone().requires_grad_(true);
  const auto expected_loss = SupervisedContrastiveLoss(whole, labels, 0.1);
  expected_loss.backward();

  const int64_t first = group->rank() * per_rank;
  auto mine = features.narrow(0, first, per_rank).clone().requires_grad_(true);
  const auto my_labels = labels.narrow(0, first, per_rank);
  const auto local_mean =
      SameLabelContrastiveLoss(mine, my_labels, AllGatherWithGradient(group, mine), labels, first, 0.1);
  const auto counted = ((my_labels.unsqueeze(1) == labels.unsqueeze(0)).sum(1) > 1).sum();
  EXPECT_EQ(counted.item<int64_t>(), group->rank() == 0 ? 5 : 1);
  const auto loss = MeanOverAllRanks(*group, local_mean, counted);
  loss.backward();
  std::vector<torch::Tensor> mean = {loss.detach().reshape({1}) / 2.0};
  group->AllReduceSum(mean);
  EXPECT_LT(MaxRelativeDifference(mean[0].squeeze(), expected_loss.detach()), 1e-12);
  // As for SpatialNCE: each rank's gradient for its rows is size × the one-process one.
  EXPECT_LT(MaxRelativeDifference(mine.grad(), whole.grad().narrow(0, first, per_rank) * 2.0), 1e-12);
}

TEST(Distributed, BroadcastModuleGivesEveryRankRankZerosParametersAndBuffers) {
  auto group = Group();
  Model model(100 + uint64_t(group->rank()));  // different on every rank
  for (auto& b : model.Buffers()) b.fill_(double(group->rank() + 1));
  BroadcastModule(*group, *model.backbone);
  BroadcastModule(*group, *model.head);
  Model rank_zero(100);
  const auto mine = model.Parameters(), expected = rank_zero.Parameters();
  for (size_t i = 0; i < mine.size(); ++i) EXPECT_TRUE(torch::equal(mine[i], expected[i])) << "parameter " << i;
  for (auto& b : model.Buffers()) EXPECT_EQ(b.max().item<double>(), 1.0);
  EXPECT_TRUE(mine[0].is_contiguous(torch::MemoryFormat::ChannelsLast));  // layout kept
}

TEST(Distributed, TwoRanksStepLikeOneProcessOnTheConcatenatedBatch) {
  auto group = Group();
  const int64_t per_rank = 4, all = per_rank * group->size();
  const int64_t first = group->rank() * per_rank;
  Model alone(1), ranked(1);
  AttachProcessGroup(*ranked.backbone, group);
  AttachProcessGroup(*ranked.head, group);
  GradientAllReduce all_reduce(group, ranked.Parameters(), /*bucket_bytes=*/64 << 10, /*first_bucket_bytes=*/8 << 10);
  ASSERT_GT(all_reduce.bucket_count(), 2u);  // several buckets, so their order matters
  LarsSgd alone_lars(alone.Groups(), {}), ranked_lars(ranked.Groups(), {});

  for (int step = 0; step < 4; ++step) {
    const Batch batch(all, 1000 + uint64_t(step));
    const auto alone_loss = SpatialNceLoss(alone.Project(batch.images), batch.positions);
    alone_lars.ZeroGrad();
    alone_loss.backward();

    const auto my_positions = batch.positions.narrow(0, first, per_rank);
    const auto projections = ranked.Project(batch.images.narrow(0, first, per_rank));
    const auto loss =
        SpatialNceLoss(projections, my_positions, AllGatherWithGradient(group, projections), batch.positions, first);
    ranked_lars.ZeroGrad();
    all_reduce.Arm();
    loss.backward();
    all_reduce.Finish();

    std::vector<torch::Tensor> mean_loss = {loss.detach().clone() / double(group->size())};
    group->AllReduceSum(mean_loss);
    EXPECT_LT(MaxRelativeDifference(mean_loss[0], alone_loss.detach()), 1e-12) << "step " << step;
    const auto alone_parameters = alone.Parameters(), ranked_parameters = ranked.Parameters();
    for (size_t i = 0; i < alone_parameters.size(); ++i) {
      ASSERT_TRUE(ranked_parameters[i].grad().defined()) << "parameter " << i;
      EXPECT_LT(MaxRelativeDifference(ranked_parameters[i].grad(), alone_parameters[i].grad()), 1e-9)
          << "gradient of parameter " << i << " at step " << step;
    }
    const auto alone_buffers = alone.Buffers(), ranked_buffers = ranked.Buffers();
    for (size_t i = 0; i < alone_buffers.size(); ++i) {
      EXPECT_LT(MaxRelativeDifference(ranked_buffers[i].to(torch::kDouble), alone_buffers[i].to(torch::kDouble)), 1e-9)
          << "buffer " << i << " (running statistics) at step " << step;
    }
    alone_lars.Step(0.5);
    ranked_lars.Step(0.5);
  }
  const auto alone_parameters = alone.Parameters(), ranked_parameters = ranked.Parameters();
  for (size_t i = 0; i < alone_parameters.size(); ++i) {
    EXPECT_LT(MaxRelativeDifference(ranked_parameters[i], alone_parameters[i]), 1e-9)
        << "parameter " << i << " after 4 LARS steps";
  }
  // Eval mode: plain batch norm with the (synchronised) running statistics.
  alone.backbone->eval(), ranked.backbone->eval(), alone.head->eval(), ranked.head->eval();
  const Batch probe(2, 5);
  EXPECT_LT(MaxRelativeDifference(ranked.Project(probe.images), alone.Project(probe.images)), 1e-9);
}

TEST(Distributed, SynchronisedBatchNormOnUnequalBatchesMatchesTheWholeBatch) {
  auto group = Group();
  // Rank r holds r + 2 samples: the merge must weigh ranks by their counts.
  const int64_t mine = group->rank() + 2, before = group->rank() == 0 ? 0 : 2, all = 2 + 3;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(11);
  const auto x = torch::randn({all, 3, 5, 5}, generator, torch::kDouble) * 3 + 2;
  const auto dy = torch::randn({all, 3, 5, 5}, generator, torch::kDouble);
  torch::manual_seed(3);
  SyncBatchNorm2d plain(3), synchronised(3);
  plain->to(torch::kDouble), synchronised->to(torch::kDouble);
  synchronised->set_process_group(group);
  auto x_all = x.clone().requires_grad_(true);
  (plain(x_all) * dy).sum().backward();
  auto x_mine = x.narrow(0, before, mine).clone().requires_grad_(true);
  (synchronised(x_mine) * dy.narrow(0, before, mine)).sum().backward();
  EXPECT_LT(MaxRelativeDifference(x_mine.grad(), x_all.grad().narrow(0, before, mine)), 1e-12);
  EXPECT_LT(MaxRelativeDifference(synchronised->running_mean, plain->running_mean), 1e-12);
  EXPECT_LT(MaxRelativeDifference(synchronised->running_var, plain->running_var), 1e-12);
  std::vector<torch::Tensor> weight_gradient = {synchronised->weight.grad().clone()};
  group->AllReduceSum(weight_gradient);  // each rank holds its share
  EXPECT_LT(MaxRelativeDifference(weight_gradient[0], plain->weight.grad()), 1e-12);
}

TEST(Distributed, AgreeStopsEveryRankWhenOneFails) {
  auto group = Group();
  const std::string mine = group->rank() == 1 ? "rank 1's own trouble" : "";
  try {
    group->Agree(mine, "the test");
    FAIL() << "Agree returned on rank " << group->rank();
  } catch (const c10::Error& e) {
    const std::string text = e.what_without_backtrace();
    if (group->rank() == 1) {
      EXPECT_NE(text.find("rank 1's own trouble"), std::string::npos) << text;
    } else {
      EXPECT_NE(text.find("rank(s) 1 failed during the test"), std::string::npos) << text;
    }
  }
  EXPECT_EQ(group->BroadcastText(group->rank() == 0 ? "from rank 0" : "ignored"), "from rank 0");
  group->Agree("", "a phase where all went well");  // returns
}

}  // namespace
}  // namespace cytonet::train

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto session = cytonet::MpiSession::Start(&argc, &argv, 0);
  if (!session.ok()) {
    std::fprintf(stderr, "%s\n", session.status().ToString().c_str());
    return 1;
  }
  cytonet::train::mpi = session->get();
  torch::set_num_threads(1);
  const int failed = RUN_ALL_TESTS();
  // Every rank's verdict decides the exit code of both.
  const int64_t any_failed = (*session)->SumAll({failed != 0 ? 1 : 0})[0];
  return any_failed != 0 ? 1 : 0;
}
