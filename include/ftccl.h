/*
 * ftccl: a fault-tolerant collective communication library.
 *
 * The only public header. A C API shaped like NCCL's: a unique id, communicator
 * init, collectives ordered on streams, asynchronous errors and abort. Every
 * call returns an ftcclResult_t and never lets an exception, abort() or exit()
 * escape. Copyright (c) 2026 the ftccl authors. BSD-3-Clause.
 */
#ifndef FTCCL_H_
#define FTCCL_H_

#include <limits.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define FTCCL_API __attribute__((visibility("default")))
#else
#define FTCCL_API
#endif

#define FTCCL_MAJOR 0
#define FTCCL_MINOR 1
#define FTCCL_PATCH 0
/** FTCCL_VERSION_CODE as returned by ftcclGetVersion: major*10000 + minor*100 + patch. */
#define FTCCL_VERSION_CODE (FTCCL_MAJOR * 10000 + FTCCL_MINOR * 100 + FTCCL_PATCH)

/** Size of the opaque unique id that ranks share out of band (MPI_Bcast, a file...). */
#define FTCCL_UNIQUE_ID_BYTES 128
/** Opaque rendezvous token: the root's address and a random 128-bit secret. */
typedef struct {
  char internal[FTCCL_UNIQUE_ID_BYTES];
} ftcclUniqueId;

/** A communicator: a group of ranks that run collectives together. */
typedef struct ftcclComm* ftcclComm_t;
/** An ordered queue of operations; the NULL stream makes every call blocking. */
typedef struct ftcclStream* ftcclStream_t;

/** Result of every call. */
typedef enum {
  ftcclSuccess = 0,
  ftcclSystemError = 2,     /**< the OS or the network failed (socket, memory, UCX) */
  ftcclInternalError = 3,   /**< a bug in ftccl: please report it with the log */
  ftcclInvalidArgument = 4, /**< a bad pointer, count, type, op, root or config value */
  ftcclInvalidUsage = 5,    /**< a call in the wrong state or role (e.g. on an aborted
                                 communicator, a rebuild with nothing to rebuild, a spare calling
                                 a collective, unmatched group or send-to-self calls) or ranks
                                 calling one op with different arguments */
  ftcclRemoteError = 6,     /**< a peer failed; the communicator is revoked */
  ftcclInProgress = 7,      /**< an operation or stream has not finished yet */
  ftcclTimeout = 8,         /**< no progress within the configured timeout */
  ftcclNumResults = 9
} ftcclResult_t;

/** Element types. fp16 and bf16 are reduced in float and rounded once per step. */
typedef enum {
  ftcclInt8 = 0,
  ftcclUint8 = 1,
  ftcclInt32 = 2,
  ftcclUint32 = 3,
  ftcclInt64 = 4,
  ftcclUint64 = 5,
  ftcclFloat16 = 6,
  ftcclFloat32 = 7,
  ftcclFloat64 = 8,
  ftcclBfloat16 = 9,
  ftcclNumTypes = 10
} ftcclDataType_t;

/** Reductions. Integer Avg is the wrapped sum divided by nranks, truncated toward 0. */
typedef enum {
  ftcclSum = 0,
  ftcclProd = 1,
  ftcclMax = 2,
  ftcclMin = 3,
  ftcclAvg = 4,
  ftcclNumOps = 5
} ftcclRedOp_t;

/** A config field left unset: the environment variable decides, then the default. */
#define FTCCL_CONFIG_UNDEF_INT INT_MIN
#define FTCCL_CONFIG_UNDEF_PTR NULL
#define FTCCL_CONFIG_MAGIC 0xf7cc1c0fu

/** Per-communicator settings; start from FTCCL_CONFIG_INITIALIZER. */
typedef struct {
  size_t size;            /**< filled by the initializer: sizeof(ftcclConfig_t) */
  unsigned magic;         /**< filled by the initializer: FTCCL_CONFIG_MAGIC */
  unsigned version;       /**< filled by the initializer: FTCCL_VERSION_CODE */
  int nSpares;            /**< hot standby processes beyond nranks (FTCCL_SPARES, default 0) */
  int probeIntervalMs;    /**< health probe period (default 10) */
  int failureTimeoutMs;   /**< silence after which a peer is declared failed */
  int opTimeoutMs;        /**< a collective with no progress this long fails (0 = off) */
  int shrinkWhenNoSpares; /**< 1: shrink and renumber; 0: fail with ftcclRemoteError */
  const char* algorithm;  /**< FTCCL_ALGO syntax: "ring", "allreduce:tree;broadcast:ring" */
} ftcclConfig_t;

#define FTCCL_CONFIG_INITIALIZER                                                           \
  {                                                                                        \
    sizeof(ftcclConfig_t), FTCCL_CONFIG_MAGIC, FTCCL_VERSION_CODE, FTCCL_CONFIG_UNDEF_INT, \
        FTCCL_CONFIG_UNDEF_INT, FTCCL_CONFIG_UNDEF_INT, FTCCL_CONFIG_UNDEF_INT,            \
        FTCCL_CONFIG_UNDEF_INT, FTCCL_CONFIG_UNDEF_PTR                                     \
  }

/** A human-readable name for a result code. Never NULL. */
FTCCL_API const char* ftcclGetErrorString(ftcclResult_t result);
/**
 * The last error on a communicator, naming the failed rank, the operation and why;
 * with a NULL comm, the last error of the calling thread. Never NULL ("" when none).
 * The string stays valid until the next call on the same communicator or thread.
 */
FTCCL_API const char* ftcclGetLastError(ftcclComm_t comm);
/** Library version as FTCCL_VERSION_CODE. */
FTCCL_API ftcclResult_t ftcclGetVersion(int* version);

/**
 * Creates the rendezvous token on the root process and starts its listener.
 * With FTCCL_COMM_ID=host:port (and FTCCL_COMM_SECRET) every process builds the
 * same id without communicating, and rank 0 listens at host:port during init.
 */
FTCCL_API ftcclResult_t ftcclGetUniqueId(ftcclUniqueId* uniqueId);
/** Joins communicator `id` as `rank` of `nranks`; blocks until all ranks arrived. */
FTCCL_API ftcclResult_t ftcclCommInitRank(ftcclComm_t* comm, int nranks, ftcclUniqueId id,
                                          int rank);
/** As ftcclCommInitRank, with settings; config may be NULL. */
FTCCL_API ftcclResult_t ftcclCommInitRankConfig(ftcclComm_t* comm, int nranks, ftcclUniqueId id,
                                                int rank, ftcclConfig_t* config);
/** Spare only: blocks until activated (1: now holds a rank) or the communicator ends (0). */
FTCCL_API ftcclResult_t ftcclCommStandby(ftcclComm_t comm, int* activated);
/** An id with which a new process joins this communicator as a spare. */
FTCCL_API ftcclResult_t ftcclCommGetJoinId(ftcclComm_t comm, ftcclUniqueId* id);
/** A new process refills the spare pool of a running communicator. */
FTCCL_API ftcclResult_t ftcclCommJoinAsSpare(ftcclComm_t* comm, ftcclUniqueId joinId,
                                             ftcclConfig_t* config);
/** NCCL's color/key split; color < 0 (FTCCL_SPLIT_NOCOLOR) gives a NULL newcomm. */
#define FTCCL_SPLIT_NOCOLOR -1
FTCCL_API ftcclResult_t ftcclCommSplit(ftcclComm_t comm, int color, int key, ftcclComm_t* newcomm,
                                       ftcclConfig_t* config);
/** Number of active ranks. */
FTCCL_API ftcclResult_t ftcclCommCount(ftcclComm_t comm, int* count);
/** This process's rank; -1 for a spare that has not been activated. */
FTCCL_API ftcclResult_t ftcclCommUserRank(ftcclComm_t comm, int* rank);
/** ftcclSuccess, or the error that revoked the communicator. Safe from any thread. */
FTCCL_API ftcclResult_t ftcclCommGetAsyncError(ftcclComm_t comm, ftcclResult_t* asyncError);

/** What a rebuild did. */
typedef struct {
  unsigned long long epoch; /**< the new epoch */
  int nranks;               /**< active ranks after the rebuild */
  int nFailed;              /**< ranks lost */
  int nReplaced;            /**< of which replaced by spares */
  int sparesLeft;           /**< spares still waiting */
  int shrunk;               /**< 1 when ranks were renumbered densely */
} ftcclRebuildInfo_t;
/** Waits for the automatic rebuild after a failure and reports it. */
FTCCL_API ftcclResult_t ftcclCommRebuild(ftcclComm_t comm, ftcclRebuildInfo_t* info);
/** Ranks lost in the last rebuild, in the numbering before it. */
FTCCL_API ftcclResult_t ftcclCommFailedRanks(ftcclComm_t comm, int* ranks, int maxRanks,
                                             int* nFailed);
/**
 * The communicator's statistics as one JSON object, the schema of the FTCCL_STATS_FILE
 * lines (docs/observability.md): ops, bytes, time and busbw per collective since init,
 * the op progress, and per peer the bytes moved, busy time, health round trips and
 * lateness, with the stragglers and slow links this rank flags. *length receives the
 * length of the JSON (without the NUL); it is written to json when it fits in `size`
 * bytes with its NUL. json NULL with size 0 only asks for the length; a smaller buffer
 * is ftcclInvalidArgument (json then holds ""). The length can grow between two calls
 * (counters gain digits): leave slack, and call again when it does not fit. Safe from
 * any thread.
 */
FTCCL_API ftcclResult_t ftcclCommGetStats(ftcclComm_t comm, char* json, size_t size,
                                          size_t* length);
/** Stops everything local at once; never waits for a peer. Safe from any thread. */
FTCCL_API ftcclResult_t ftcclCommAbort(ftcclComm_t comm);
/** Orderly leave: waits for this rank's queued work, frees everything. */
FTCCL_API ftcclResult_t ftcclCommDestroy(ftcclComm_t comm);

/** A new stream; its operations run in order, asynchronously to the caller. */
FTCCL_API ftcclResult_t ftcclStreamCreate(ftcclStream_t* stream);
/** Waits for every operation queued so far; returns the first error among them. */
FTCCL_API ftcclResult_t ftcclStreamSynchronize(ftcclStream_t stream);
/** ftcclInProgress while work is queued, else the first error (or success). */
FTCCL_API ftcclResult_t ftcclStreamQuery(ftcclStream_t stream);
/** Waits for queued work, then frees the stream. */
FTCCL_API ftcclResult_t ftcclStreamDestroy(ftcclStream_t stream);

/** recvbuff[i] = op over ranks of sendbuff[i]; in place when sendbuff == recvbuff. */
FTCCL_API ftcclResult_t ftcclAllReduce(const void* sendbuff, void* recvbuff, size_t count,
                                       ftcclDataType_t datatype, ftcclRedOp_t op, ftcclComm_t comm,
                                       ftcclStream_t stream);
/** Copies root's sendbuff into every rank's recvbuff (sendbuff used on root only). */
FTCCL_API ftcclResult_t ftcclBroadcast(const void* sendbuff, void* recvbuff, size_t count,
                                       ftcclDataType_t datatype, int root, ftcclComm_t comm,
                                       ftcclStream_t stream);
/** As AllReduce, the result on root only. */
FTCCL_API ftcclResult_t ftcclReduce(const void* sendbuff, void* recvbuff, size_t count,
                                    ftcclDataType_t datatype, ftcclRedOp_t op, int root,
                                    ftcclComm_t comm, ftcclStream_t stream);
/** recvbuff[r*sendcount ...] = rank r's sendbuff; in place at that offset. */
FTCCL_API ftcclResult_t ftcclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount,
                                       ftcclDataType_t datatype, ftcclComm_t comm,
                                       ftcclStream_t stream);
/** recvbuff = op over ranks of sendbuff[rank*recvcount ...]; in place at that offset. */
FTCCL_API ftcclResult_t ftcclReduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount,
                                           ftcclDataType_t datatype, ftcclRedOp_t op,
                                           ftcclComm_t comm, ftcclStream_t stream);
/** Point to point; matched in order with the peer's ftcclRecv. */
FTCCL_API ftcclResult_t ftcclSend(const void* buff, size_t count, ftcclDataType_t datatype,
                                  int peer, ftcclComm_t comm, ftcclStream_t stream);
FTCCL_API ftcclResult_t ftcclRecv(void* buff, size_t count, ftcclDataType_t datatype, int peer,
                                  ftcclComm_t comm, ftcclStream_t stream);
/** Fuse the calls between them into one operation. */
FTCCL_API ftcclResult_t ftcclGroupStart(void);
FTCCL_API ftcclResult_t ftcclGroupEnd(void);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // FTCCL_H_
