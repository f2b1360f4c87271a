// The agreement's messages and the memberships they carry, with their wire codec.
// What the agreement decides with them is in agreement.h.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
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
struct JoiningSpare {
  Member key;
  std::string host;
  int32_t pid = 0;
  std::vector<uint8_t> peerInfo;  // opaque here: what core/ needs to reach it
};

struct RecoveryMessage {
  enum Type : uint8_t {
    kReport = 1,
    kCommit = 2,
    kExpelled = 3,
    kJoin = 4,        // newcomer -> a member -> the coordinator
    kJoinAccept = 5,  // the member -> newcomer, once the pool commit is adopted
    kPropose = 6,     // coordinator -> members: a decision to accept (ballot, failed, joined)
    kAccept = 7,      // member -> coordinator: accepted the proposal of `ballot`
  } type = kReport;
  uint64_t epoch = 0;                // the epoch being left (report, propose) / entered (commit)
  std::vector<Member> failed;        // kReport: the sender's failed set; else the decided one
  Membership next;                   // kJoinAccept (kCommit: derived by each member, not sent)
  std::vector<int> failedRanks;      // kCommit: ranks lost, numbered in the old epoch
  int replaced = 0;                  // kCommit: how many were replaced by spares
  bool shrunk = false;               // kCommit
  std::vector<JoiningSpare> joined;  // kJoin: the candidate; kCommit, kPropose: spares added
  std::vector<uint8_t> blob;         // kJoin: the join secret; kJoinAccept: member table
  // kPropose, kAccept: the proposal's ballot. kReport: the ballot of the proposal the
  // sender accepted (-1: none), whose decision is acceptedFailed and joined.
  int64_t ballot = -1;
  std::vector<Member> acceptedFailed;
  // kReport from the coordinator: it has no report of the receiver yet (else it only
  // shows that it is alive and deciding).
  bool wantsReport = false;
  // kPropose, kCommit: the decision's salt (EpochSalt); kReport: the accepted one's.
  EpochSalt salt{};
  // kJoinAccept: the communicator's root key, sealed for the newcomer (health_auth.h).
  std::vector<uint8_t> sealedKey;
};

std::vector<uint8_t> encodeRecoveryMessage(const RecoveryMessage& m);
bool decodeRecoveryMessage(const std::vector<uint8_t>& frame, RecoveryMessage* out);

}  // namespace ftccl
