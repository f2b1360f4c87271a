// The communicator's tuning: rank 0 measures the cost model and every rank runs the
// calibration probes (tuning/measurement.h does the timing), then rank 0's result is
// shared so every member chooses algorithms alike.
#include "algorithms/subset_transport.h"
#include "core/communicator.h"
#include "tuning/measurement.h"
#include "util/log.h"

namespace ftccl {

Status Communicator::tuneAtInit() {
  FTCCL_CHECK(setUpNodeMemory("init"));  // first: the calibration times its algorithm too
  FTCCL_CHECK(measureCostModel());
  FTCCL_CHECK(shareTuning("init"));
  if (builder_.tuner().calibration().requested) {
    FTCCL_CHECK(calibrate());
    FTCCL_CHECK(shareTuning("calibration"));
  }
  return Status::ok();
}

// Rank 0 times round trips with rank 1 over the real transport. The pair's link is
// inside a node or between nodes, and only that kind is measured.
Status Communicator::measureCostModel() {
  std::shared_ptr<const EpochView> view = epochs_.current();
  const int rank = view->rank;
  if (rank > 1 || view->nranks() < 2) return Status::ok();
  SubsetTransport pair(*transport_, {0, 1}, kTuningChannel);
  std::vector<uint8_t> buffer(kLinkProbeBytes, 1);
  auto roundTrip = [&](size_t bytes, uint32_t round) -> Status {
    MessageKey key{round, 0};
    PointToPoint send{true, 1 - rank, buffer.data(), bytes, key};
    PointToPoint recv{false, 1 - rank, buffer.data(), bytes, key};
    for (const PointToPoint& step : rank == 0 ? std::vector<PointToPoint>{send, recv}
                                              : std::vector<PointToPoint>{recv, send}) {
      std::unique_ptr<Collective> op = makePointToPoint(pair, {step});
      FTCCL_CHECK(driver_.drive(*transport_, *op, "cost model measurement", {},
                                driver_.internalOpTimeoutMs()));
    }
    return Status::ok();
  };
  CostModel model = config_.costModel;
  const bool sameNode = view->ofRank(0).node == view->ofRank(1).node;
  FTCCL_CHECK(measureLinkCost(roundTrip, /*measurer=*/rank == 0, sameNode, &model));
  // Rank 1 cannot know whether rank 0 was given its model (FTCCL_TUNING is read per
  // process): rank 0 takes part in the round trips either way, and a given model keeps
  // what it measured out (rank 1 used to wait for them in vain: init failed after 10 s).
  if (rank == 1 || config_.tuningGiven) return Status::ok();
  config_.costModel = model;
  const CommShape& shape = builder_.shape();
  Calibration request;  // every rank runs the probes once the model is shared
  // Nothing to choose: one candidate, or the all-reduce's algorithm forced.
  request.requested = Tuner::candidates(CollectiveKind::kAllReduce, shape).size() > 1 &&
                      !config_.overrides.forced[static_cast<int>(CollectiveKind::kAllReduce)];
  request.shape = shape;
  const Tuner bare(model, config_.overrides, config_.pipeline);
  request.plan(Tuner::candidates(CollectiveKind::kAllReduce, shape),
               [&](Algorithm a, size_t bytes) {
                 return bare.modelUs(CollectiveKind::kAllReduce, a, bytes, shape);
               });
  builder_.setTuner(Tuner(model, config_.overrides, config_.pipeline, request));
  return Status::ok();
}

// Every rank runs each candidate all-reduce through the op order, as an application
// would (the same sequence of collectives everywhere, so the usual op numbering keeps
// them apart); rank 0's times become the calibration, shared next.
Status Communicator::calibrate() {
  size_t maxCount = Calibration::kProbeBytes[Calibration::kProbes - 1] / sizeof(float);
  std::vector<float> send(maxCount, 1.0f), recv(maxCount);
  auto run = [&](Algorithm algorithm, size_t bytes, int calls) -> Status {
    for (int i = 0; i < calls; ++i) {
      OpRequest op;
      op.kind = OpKind::kAllReduce;
      op.algorithm = static_cast<int>(algorithm);
      op.internal = true;
      op.args.sendbuff = send.data();
      op.args.recvbuff = recv.data();
      op.args.count = bytes / sizeof(float);
      op.args.type = ftcclFloat32;
      op.args.op = ftcclSum;
      std::vector<OpRequest> batch{op};
      FTCCL_CHECK(execute(issue(&batch), batch));
    }
    return Status::ok();
  };
  const CommShape shape = builder_.shape();
  Calibration calibration;
  FTCCL_CHECK(calibrateAllReduce(Tuner::candidates(CollectiveKind::kAllReduce, shape), shape,
                                 builder_.tuner().calibration(), run, &calibration));
  Tuner tuner = builder_.tuner();
  tuner.setCalibration(calibration);
  builder_.setTuner(std::move(tuner));
  return Status::ok();
}

// A failure while the new epoch shares its tuning revokes that epoch: the member is in
// it all the same, and its next op reports the failure and leads to the next rebuild
// (which shares again). Only other errors fail the rebuild itself.
Status Communicator::shareTuningAfterCommit(const char* when) {
  Status shared = shareTuning(when);
  if (shared.isOk() || revocation_.revoked()) return Status::ok();
  return shared;
}

// Rank 0's model, overrides and calibration reach every member by a binomial broadcast
// on the tuning channel (log2 n rounds: a chain's n - 1 hops were 0.2-0.5 s at 100,000
// ranks, twice at init and at every rebuild): members that joined as spares, or whose
// FTCCL_ALGO differs, still choose as rank 0 does. After a rebuild the new rank 0 passes
// on what it adopted.
Status Communicator::shareTuning(const char* when) {
  const int rank = epochs_.rank(), nranks = epochs_.nranks();
  std::vector<double> payload = builder_.tuner().toVector();
  if (nranks > 1) {
    std::vector<int> everyone(nranks);
    for (int r = 0; r < nranks; ++r) everyone[r] = r;
    SubsetTransport all(*transport_, everyone, kTuningChannel);
    CollectiveArgs args;
    args.sendbuff = args.recvbuff = payload.data();
    args.count = payload.size();
    args.type = ftcclFloat64;
    args.root = 0;
    std::unique_ptr<Collective> op = makeBinomialBroadcast(all, args);
    FTCCL_CHECK(driver_.drive(*transport_, *op, std::string("sharing the cost model at ") + when,
                              {}, driver_.internalOpTimeoutMs()));
  }
  std::string source = rank == 0 ? builder_.tuner().model().source : "rank 0's";
  Tuner shared;
  FTCCL_CHECK(Tuner::fromVector(payload, config_.pipeline, &shared));
  CostModel model = shared.model();
  model.source = source;
  builder_.setTuner(Tuner(model, shared.overrides(), config_.pipeline, shared.calibration()));
  if (rank == 0) {
    const Tuner& tuner = builder_.tuner();
    FTCCL_LOG(Info, Tuning, "cost model at {}: {}; {}; algorithm: {}", when,
              describe(tuner.model()), describe(tuner.calibration()),
              config_.algorithm.empty() ? "chosen by the model" : config_.algorithm);
  }
  return Status::ok();
}

}  // namespace ftccl
