// Run with FTCCL_DEBUG set to an invalid level: init must fail and say why.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

#include "ftccl.h"

TEST(Env, InvalidDebugLevelFailsInit) {
  ASSERT_NE(std::getenv("FTCCL_DEBUG"), nullptr) << "run me with FTCCL_DEBUG=<invalid>";
  ftcclUniqueId id;
  ftcclComm_t comm = nullptr;
  ftcclResult_t r = ftcclGetUniqueId(&id);
  if (r == ftcclSuccess) r = ftcclCommInitRank(&comm, 1, id, 0);
  EXPECT_EQ(r, ftcclInvalidArgument);
  EXPECT_NE(std::strstr(ftcclGetLastError(nullptr), "FTCCL_DEBUG"), nullptr)
      << ftcclGetLastError(nullptr);
}
