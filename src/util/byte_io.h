// Little helpers to write and read the small binary messages of ftccl's own protocols
// (peer info, health, agreement): fixed-size values in host order, byte strings with a
// u32 length. The reader never trusts a length it has not checked against the input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace ftccl {

class ByteWriter {
 public:
  template <typename T>
  void put(T value) {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(&value);
    bytes_.insert(bytes_.end(), p, p + sizeof(T));
  }
  void putBytes(const void* data, size_t length) {
    put(static_cast<uint32_t>(length));
    const uint8_t* p = static_cast<const uint8_t*>(data);
    bytes_.insert(bytes_.end(), p, p + length);
  }
  void putString(const std::string& s) { putBytes(s.data(), s.size()); }
  void putBlob(const std::vector<uint8_t>& b) { putBytes(b.data(), b.size()); }
  void putStrings(const std::vector<std::string>& v) {
    put(static_cast<uint32_t>(v.size()));
    for (const std::string& s : v) putString(s);
  }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  explicit ByteReader(const std::vector<uint8_t>& in) : ByteReader(in.data(), in.size()) {}

  template <typename T>
  bool get(T* value) {
    if (size_ - at_ < sizeof(T)) return false;
    std::memcpy(value, data_ + at_, sizeof(T));
    at_ += sizeof(T);
    return true;
  }
  bool getString(std::string* s) {
    uint32_t length = 0;
    if (!get(&length) || size_ - at_ < length) return false;
    s->assign(reinterpret_cast<const char*>(data_ + at_), length);
    at_ += length;
    return true;
  }
  bool getBlob(std::vector<uint8_t>* b) {
    uint32_t length = 0;
    if (!get(&length) || size_ - at_ < length) return false;
    b->assign(data_ + at_, data_ + at_ + length);
    at_ += length;
    return true;
  }
  bool getStrings(std::vector<std::string>* v) {
    uint32_t n = 0;
    if (!get(&n) || n > (size_ - at_) / sizeof(uint32_t)) return false;  // >= 4 bytes each
    v->resize(n);
    for (std::string& s : *v) {
      if (!getString(&s)) return false;
    }
    return true;
  }
  bool atEnd() const { return at_ == size_; }
  size_t remaining() const { return size_ - at_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t at_ = 0;
};

}  // namespace ftccl
