// The agreement's messages and the memberships they carry, with their wire codec.
// What the agreement decides with them is in agreement.h.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace ftccl {

using Member = std::string;  // a process (its health address)

// Random bits chosen with each decision: the next epoch's health key derives from them,
// so a process that was not told the commit (an expelled one) cannot compute it.
using EpochSalt = std::array<uint8_t, 16>;
EpochSalt freshEpochSalt();
// Where salts come from: the kernel's random numbers, or (the simulator, so that a run
// stays a function of its seed) a generator it installs; empty restores the kernel's.
void setEpochSaltSource(std::function<EpochSalt()> source);

// A process lost by the commit that entered `epoch`.
struct LostMember {
  uint64_t epoch = 0;
  Member key;
};

struct Membership {
  uint64_t epoch = 0;
  std::vector<Member> ranks;   // logical rank -> process
  std::vector<Member> spares;  // in activation order
  // Every process lost since this agreement's first epoch, oldest commit first: a process
  // told only the newest of several commits (it skipped one) still learns what each of
  // them lost, and acts on each as those told every commit did. Local: never sent.
  std::vector<LostMember> lost;
};

// A process asking to join the spare pool.
// A process as every layer names it: its health listener address, which is its identity
// (the agreement's Member), and where it runs, for logs and failure reports. Health's
// member table, core's peer table and a join request each extend it with what they need.
struct ProcessId {
  Member key;
  std::string host;
  int32_t pid = 0;
};

struct JoiningSpare : ProcessId {
  std::vector<uint8_t> peerInfo;  // opaque here: what core/ needs to reach it
};

// Voters named by their places in the epoch a message speaks for (ranks, then spares,
// as EpochStore numbers them), in ascending ranges apart from each other: first, count,
// first, count, ... Every failed set travels so: a rack of 256 is one range of 8 bytes,
// where its names were 256 strings in each of the O(N log N) copies of a spread (issue
// 27: those frames were most of a 100,000-rank run's memory). A receiver of another
// epoch ignores the message, or cannot read it (a newcomer: a join answer's failed set).
using PlaceRanges = std::vector<uint32_t>;

// One struct per message type, each with the fields it carries; kWireType is its first
// byte on the wire.

// A member's failed set for the coordinator (agreement.h, step 1), or the coordinator's
// own for a member (news of failures, a sign of life, an ask).
struct AgreementReport {
  static constexpr uint8_t kWireType = 1;
  uint64_t epoch = 0;  // the epoch being left
  PlaceRanges failed;
  // The ballot of the proposal the sender accepted (-1: none), whose decision is
  // acceptedFailed, joined and salt (step 4: a later coordinator must propose it).
  int64_t ballot = -1;
  PlaceRanges acceptedFailed;
  std::vector<JoiningSpare> joined;
  EpochSalt salt{};
  // From the coordinator: it has no report of the receiver yet (else it only shows that
  // it is alive and deciding).
  bool wantsReport = false;
};

// The decision taking epoch - 1 to `epoch`. Only epoch, failed, joined and salt travel
// between members (Agreement::compact): each derives the rest from its own copy of the
// epoch it leaves (Agreement::decide).
struct AgreementCommit {
  static constexpr uint8_t kWireType = 2;
  uint64_t epoch = 0;                // the epoch entered
  PlaceRanges failed;                // the decided failed set, in the epoch left (their
                                     // names: next.lost's entries of `epoch`)
  Membership next;                   // derived by each member (a join answer carries it)
  std::vector<int> failedRanks;      // ranks lost, numbered in the old epoch
  int replaced = 0;                  // how many were replaced by spares
  bool shrunk = false;               // ranks were dropped and the rest renumbered
  std::vector<JoiningSpare> joined;  // spares added to the pool
  EpochSalt salt{};                  // the next epoch's health key derives from it
};

// To a process of an older epoch: the others went on to `epoch` without it.
struct AgreementExpelled {
  static constexpr uint8_t kWireType = 3;
  uint64_t epoch = 0;
};

// A newcomer -> a member (its sponsor) -> the coordinator: add the candidate to the pool.
struct JoinRequest {
  static constexpr uint8_t kWireType = 4;
  uint64_t epoch = 0;  // the sponsor's forward: its epoch; the newcomer knows none (0)
  // Absent when the frame named none or several: such a request is ignored.
  std::optional<JoiningSpare> candidate;
  // The newcomer's own request carries its proof of a join id (the join secret; under
  // authentication, where the join key's seal is the proof, any non-empty bytes); a
  // sponsor's forward carries none.
  std::vector<uint8_t> secret;
};

// The sponsor -> the newcomer, once the pool commit is adopted.
struct JoinAccept {
  static constexpr uint8_t kWireType = 5;
  AgreementCommit commit;          // the pool commit, whole (its next membership included)
  std::vector<uint8_t> package;    // the member table (encodeJoinPackage)
  std::vector<uint8_t> sealedKey;  // the communicator's root key, sealed for the newcomer
                                   // (health_auth.h)
};

// Coordinator -> members: a decision to accept (agreement.h, step 4).
struct AgreementProposal {
  static constexpr uint8_t kWireType = 6;
  uint64_t epoch = 0;  // the epoch being left
  int64_t ballot = -1;
  PlaceRanges failed;
  std::vector<JoiningSpare> joined;
  EpochSalt salt{};
};

// Member -> coordinator: accepted the proposal of `ballot`.
struct AgreementAccept {
  static constexpr uint8_t kWireType = 7;
  uint64_t epoch = 0;
  int64_t ballot = -1;
};

// Member -> its relay -> ... -> the coordinator of `ballot` (agreement.h, relays): the
// reports, or the accepts of that ballot's proposal, of several members at once, named
// by their places among the epoch's voters (ranks, then spares) in ascending ranges.
struct AgreementVotes {
  static constexpr uint8_t kWireType = 8;
  uint64_t epoch = 0;
  int64_t ballot = -1;  // whose they are: its place in coordinator order
  bool accepts = false;
  bool toCoordinator = false;  // from the top of the tree (else: from a child, to its relay)
  // Not votes: the coordinator of `ballot` starts its round, `failed` its failed set.
  // Spread to every member (each passes it on once), which learns the failures and
  // reports: no member hears of a failure one notice per detection (a rack of 256 cost
  // 256 notices to each of 100,000 members).
  bool round = false;
  PlaceRanges places;
  // Reports: the union of their failed sets, and the decision accepted under the highest
  // ballot any of them accepted (acceptedBallot -1: none).
  PlaceRanges failed;
  int64_t acceptedBallot = -1;
  PlaceRanges acceptedFailed;
  std::vector<JoiningSpare> joined;
  EpochSalt salt{};
};

// What travels on the wire, and what the agreement dispatches on.
using RecoveryMessage =
    std::variant<AgreementReport, AgreementCommit, AgreementExpelled, JoinRequest, JoinAccept,
                 AgreementProposal, AgreementAccept, AgreementVotes>;

uint8_t wireTypeOf(const RecoveryMessage& m);
// The epoch a message speaks for (a join answer: its commit's).
uint64_t epochOf(const RecoveryMessage& m);

// Every type up to AgreementAccept is sent in the one layout all types once shared, each
// field in its place and defaults for those the type lacks (failed sets as PlaceRanges);
// decoding drops the fields the type lacks. AgreementVotes has a layout of its own.
std::vector<uint8_t> encodeRecoveryMessage(const RecoveryMessage& m);
bool decodeRecoveryMessage(const std::vector<uint8_t>& frame, RecoveryMessage* out);

}  // namespace ftccl
