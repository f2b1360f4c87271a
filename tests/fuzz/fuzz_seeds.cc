// Writes valid inputs for every fuzz target, one file each, under DIR/<target>/: the
// fuzzer starts from real messages instead of finding the magic and checksums itself.
// usage: fuzz_seeds DIR
#include <sys/stat.h>

#include <cstdio>
#include <string>
#include <vector>

#include "bootstrap/bootstrap.h"
#include "bootstrap/wire.h"
#include "core/peer_info.h"
#include "health/health_auth.h"
#include "health/health_messages.h"
#include "recovery/agreement.h"

using namespace ftccl;
using Bytes = std::vector<uint8_t>;

namespace {

std::string root;

void write(const std::string& target, int n, const Bytes& bytes) {
  std::string dir = root + "/" + target;
  mkdir(dir.c_str(), 0755);
  std::string path = dir + "/seed-" + std::to_string(n);
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return;
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
}

void append(Bytes* to, const Bytes& more) { to->insert(to->end(), more.begin(), more.end()); }

PeerInfo peer(int i) {
  PeerInfo p;
  p.host = "node" + std::to_string(i);
  p.pid = 1000 + i;
  p.key = "127.0.0.1:" + std::to_string(40000 + i);
  p.node = p.host;
  p.transportAddress = Bytes(40, static_cast<uint8_t>(i));
  p.standbyAddresses = {Bytes(40, 1), Bytes(40, 2)};
  return p;
}

void bootstrapSeeds() {
  const uint8_t secret[16] = {1, 2, 3};
  const uint8_t challenge[bootstrap::kChallengeBytes] = {9};
  bootstrap::Hello hello;
  hello.nonce = 42;
  hello.rank = 1;
  hello.nranks = 4;
  hello.timeoutMs = 1000;
  hello.remainingMs = 900;
  hello.blob = encodePeerInfo(peer(1));
  int n = 0;
  write("bootstrap_wire", n++, bootstrap::encodeChallenge(challenge));
  write("bootstrap_wire", n++, bootstrap::encodeHello(hello, secret, challenge));
  bootstrap::Role role;
  role.nonce = 42;
  role.nranks = 3;
  role.tableBytes = 64;
  role.children = 2;
  role.depth = 1;
  role.hopMs = 150;
  role.parent = 0;
  role.parentAddress = "127.0.0.1:4000";
  write("bootstrap_wire", n++, bootstrap::encodeRole(role));
  const uint8_t fetchChallenge[16] = {7};
  write("bootstrap_wire", n++,
        bootstrap::encodeFetch(42, 1, secret, fetchChallenge, std::array<uint8_t, 32>{}));
  write("bootstrap_wire", n++, bootstrap::encodeTable(42, {hello.blob, Bytes(), hello.blob}));
  write("bootstrap_wire", n++,
        bootstrap::encodeError(ftcclTimeout, "ranks 2, 3 of 4 did not join"));
  const Bytes table = bootstrap::encodeTable(42, {hello.blob});
  write("bootstrap_wire", n++,
        bootstrap::encodeReplyProof(secret, challenge, challenge, bootstrap::replyDigest(table)));
  const std::string texts[] = {"127.0.0.1:29500", "[::1]:29500",
                               "0123456789abcdef0123456789abcdef"};
  for (const std::string& t : texts) write("bootstrap_wire", n++, Bytes(t.begin(), t.end()));

  UniqueIdContents c;
  c.rootHost = "127.0.0.1";
  c.rootPort = 29500;
  c.nonce = 7;
  ftcclUniqueId id;
  encodeUniqueId(c, &id);
  const uint8_t* raw = reinterpret_cast<const uint8_t*>(&id);
  write("unique_id", 0, Bytes(raw, raw + sizeof(id)));
  c.rootHost = "::1";
  c.rankZeroStartsRoot = true;
  encodeUniqueId(c, &id);
  write("unique_id", 1, Bytes(raw, raw + sizeof(id)));
}

void healthSeeds() {
  const auto key = std::make_shared<const crypto::MacKey>(crypto::Key{});
  HealthAuth auth;
  auth.comm = 99;
  auth.epoch = 1;
  auth.key = key;
  std::vector<HealthMessage> all;
  HealthHello hello;
  hello.senderKey = "127.0.0.1:4000";
  hello.host = "node0";
  hello.pid = 12;
  hello.nonce = std::string(kConnectionNonceBytes, 'n');
  all.push_back(hello);
  HealthHeartbeat heartbeat;
  heartbeat.seq = 5;
  heartbeat.progress.resize(2);
  all.push_back(heartbeat);
  HealthAck ack;
  ack.seq = 5;
  all.push_back(ack);
  HealthFailed failed;
  failed.commKey = 99;
  failed.failedKey = "127.0.0.1:4001";
  all.push_back(failed);
  all.push_back(HealthLeave{});
  AgreementReport report;
  report.failed = {1, 1};  // place 1
  all.push_back(HealthRecovery{0, encodeRecoveryMessage(report)});
  all.push_back(HealthProgressQuery{});
  all.push_back(HealthAttest{});
  Bytes stream;
  int n = 0;
  SealContext context;
  context.sender = "a";
  context.receiver = "b";
  for (const HealthMessage& one : all) {
    Bytes frame = encodeHealthMessage(one);
    write("health_frames", n++, frame);
    const size_t start = stream.size();
    append(&stream, frame);
    if (one.type() != HealthType::kHello) appendSeal(&stream, start, auth, context);
  }
  write("health_frames", n++, stream);
  hello.nonce.clear();
  HealthMessage beat = heartbeat;
  beat.auth = auth;
  write("health_frames", n++, encodeSealedProbe(encodeHealthMessage(hello), beat, "b"));
}

void agreementSeeds() {
  AgreementReport report;
  report.epoch = 0;
  report.failed = {3, 1};  // p3
  AgreementProposal propose;
  propose.epoch = 0;
  propose.failed = {3, 1};  // p3
  propose.ballot = 0;
  AgreementAccept accept;
  accept.ballot = 0;
  AgreementCommit commit;
  commit.epoch = 1;
  commit.failed = {3, 1};  // p3
  JoinRequest join;
  join.candidate = JoiningSpare{{"s9", "node9", 9}, encodePeerInfo(peer(9))};
  AgreementVotes reports;  // a relay's reports of places 0-1 and 4
  reports.epoch = 0;
  reports.ballot = 0;
  reports.places = {0, 2, 4, 1};
  reports.failed = {3, 1};  // p3
  AgreementVotes accepts = reports;
  accepts.accepts = true;
  accepts.toCoordinator = true;
  AgreementVotes round;
  round.epoch = 0;
  round.ballot = 0;
  round.round = true;
  round.failed = {3, 1};  // p3
  Bytes sequence;
  int n = 0;
  uint8_t from = 0;
  for (const RecoveryMessage& m : std::vector<RecoveryMessage>{report, propose, accept, commit,
                                                               join, reports, accepts, round}) {
    const Bytes body = encodeRecoveryMessage(m);
    Bytes one = {from++, static_cast<uint8_t>(body.size() >> 8), static_cast<uint8_t>(body.size())};
    append(&one, body);
    write("agreement", n++, one);
    append(&sequence, one);
  }
  write("agreement", n++, sequence);
}

void peerSeeds() {
  write("peer_info", 0, encodePeerInfo(peer(0)));
  PeerInfo bare;
  write("peer_info", 1, encodePeerInfo(bare));
  PipelineConfig pipeline;
  pipeline.chunkBytes = 1 << 19;
  pipeline.channels = 4;
  write("join_package", 0, encodeJoinPackage(99, pipeline, {peer(0), peer(1), peer(2)}));
  write("join_package", 1, encodeJoinPackage(99, pipeline, {}));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds DIR\n");
    return 2;
  }
  root = argv[1];
  mkdir(root.c_str(), 0755);
  bootstrapSeeds();
  healthSeeds();
  agreementSeeds();
  peerSeeds();
  return 0;
}
