// The instruction-set builds of the typed reduction kernels (src/reduce): each vector
// build the CPU has against the baseline build, bit for bit.
#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "reduce/reduce.h"
#include "reduce_reference.h"

namespace ftccl {
namespace reduce_test {
namespace {

// Each vector build against the baseline build on arbitrary bit patterns (NaN payloads,
// infinities, subnormals included), every dtype and op, every aliasing shape and tail
// length (8/16 lanes, blocks of 16/32). Bit-identical except float32/64 NaN payloads.
class VectorBuild : public ::testing::TestWithParam<Isa> {};

TEST_P(VectorBuild, MatchesBaselineBuildBitForBit) {
  const Isa isa = GetParam();
  if (!ftccl::reduce_detail::cpuHas(isa))
    GTEST_SKIP() << "no " << ftccl::reduce_detail::isaName(isa) << " on this CPU";
  std::mt19937_64 rng(31337);
  for (ftcclDataType_t type : kAllTypes) {
    const size_t size = dataTypeSize(type);
    for (ftcclRedOp_t op : kAllOps) {
      for (size_t n :
           {size_t{1}, size_t{7}, size_t{8}, size_t{9}, size_t{15}, size_t{16}, size_t{17},
            size_t{23}, size_t{24}, size_t{25}, size_t{31}, size_t{32}, size_t{33}, size_t{47},
            size_t{48}, size_t{49}, size_t{1000}, size_t{65537}}) {
        // Element 0 is never passed: pointers are offset by one element.
        std::vector<uint8_t> a((n + 1) * size), b((n + 1) * size);
        for (size_t i = 0; i <= n; ++i) {
          uint8_t* pa = &a[i * size];
          uint8_t* pb = &b[i * size];
          const unsigned kind = rng() % 8;
          if (kind < 4) {  // raw bits
            const uint64_t x = rng(), y = rng();
            std::memcpy(pa, &x, size);
            std::memcpy(pb, &y, size);
          } else {
            fillValue(type, rng, pa);
            fillValue(type, rng, pb);
          }
          if (kind == 7) std::memcpy(pb, pa, size);  // equal pairs
          if (kind == 6) {                           // +-x pairs, -0/+0 for floats
            std::memcpy(pb, pa, size);
            pb[size - 1] ^= 0x80;
          }
        }
        for (int alias = 0; alias < 3; ++alias) {
          std::vector<uint8_t> vec(alias == 2 ? b : a), base(vec);
          const uint8_t* va = alias == 1 ? vec.data() : a.data();
          const uint8_t* vb = alias == 2 ? vec.data() : b.data();
          const uint8_t* sa = alias == 1 ? base.data() : a.data();
          const uint8_t* sb = alias == 2 ? base.data() : b.data();
          ftccl::reduce_detail::reduceWith(isa, vec.data() + size, va + size, vb + size, n, type,
                                           op);
          ftccl::reduce_detail::reduceWith(Isa::kBaseline, base.data() + size, sa + size, sb + size,
                                           n, type, op);
          ASSERT_EQ(std::memcmp(base.data(), vec.data(), size), 0);  // element 0 untouched
          for (size_t i = 1; i <= n; ++i)
            ASSERT_TRUE(sameElem(type, &base[i * size], &vec[i * size]))
                << ftccl::dataTypeName(type) << " " << ftccl::redOpName(op) << " n " << n
                << " alias " << alias << " at " << i;
        }
      }
    }
    for (int divisor : {1, 2, 3, 7, -5, 1000, INT_MAX}) {
      for (size_t n : {size_t{1}, size_t{8}, size_t{13}, size_t{16}, size_t{29}, size_t{4097}}) {
        std::vector<uint8_t> vec(n * size), base;
        for (size_t i = 0; i < n; ++i) fillValue(type, rng, &vec[i * size]);
        base = vec;
        ftccl::reduce_detail::divideByWith(isa, vec.data(), n, type, divisor);
        ftccl::reduce_detail::divideByWith(Isa::kBaseline, base.data(), n, type, divisor);
        for (size_t i = 0; i < n; ++i)
          ASSERT_TRUE(sameElem(type, &base[i * size], &vec[i * size]))
              << ftccl::dataTypeName(type) << " / " << divisor << " n " << n << " at " << i;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, VectorBuild, ::testing::Values(Isa::kAvx2, Isa::kAvx512),
                         [](const ::testing::TestParamInfo<Isa>& info) {
                           return std::string(ftccl::reduce_detail::isaName(info.param));
                         });

}  // namespace
}  // namespace reduce_test
}  // namespace ftccl
