// A copy whose stores bypass the cache (reduce.h: copyStreaming). On x86-64 SSE2 is part
// of the baseline, so no build of its own: 16-byte non-temporal stores fill whole lines
// in the write-combining buffers just as wider ones do, the loads stay ordinary, and a
// store fence ends the copy (non-temporal stores are weakly ordered: a flag published
// after this returns must not overtake them). Elsewhere it is memcpy.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "reduce/reduce.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace ftccl {

void copyStreaming(void* dst, const void* src, size_t bytes) {
#if defined(__SSE2__)
  auto* out = static_cast<uint8_t*>(dst);
  const auto* in = static_cast<const uint8_t*>(src);
  // Up to the destination's first line boundary with a plain copy: each round of four
  // stores then fills exactly one line.
  const size_t head = std::min(bytes, (64 - reinterpret_cast<uintptr_t>(out) % 64) % 64);
  std::memcpy(out, in, head);
  out += head;
  in += head;
  bytes -= head;
  auto* to = reinterpret_cast<__m128i*>(out);
  const auto* from = reinterpret_cast<const __m128i*>(in);
  const size_t lines = bytes / 64;
  for (size_t i = 0; i < lines; ++i, to += 4, from += 4) {
    const __m128i a = _mm_loadu_si128(from), b = _mm_loadu_si128(from + 1);
    const __m128i c = _mm_loadu_si128(from + 2), d = _mm_loadu_si128(from + 3);
    _mm_stream_si128(to, a);
    _mm_stream_si128(to + 1, b);
    _mm_stream_si128(to + 2, c);
    _mm_stream_si128(to + 3, d);
  }
  std::memcpy(to, from, bytes % 64);
  _mm_sfence();
#else
  std::memcpy(dst, src, bytes);
#endif
}

}  // namespace ftccl
