#pragma once
// SHA-256 (FIPS 180-4), for names derived from paths (gastown's tmux socket names) and for
// checksums of files read in pieces. Not for secrets: no constant-time guarantees are made.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace agentlock {

/// A SHA-256 computed over data that arrives in pieces (a file read a buffer at a time): the
/// digest of the pieces given to update() is the digest of their concatenation.
class Sha256 {
public:
    /// Appends `data` to the message.
    void update(std::string_view data);
    /// The digest of the message so far. Does not end the message: more update() calls may
    /// follow, and a later digest() covers them too.
    std::array<std::uint8_t, 32> digest() const;
    /// digest() as 64 lowercase hex digits (what sha256sum prints).
    std::string hex_digest() const;

private:
    std::array<std::uint32_t, 8> m_state = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                            0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    std::array<std::uint8_t, 64> m_block{}; ///< the bytes of an unfinished block
    std::size_t m_used = 0;                 ///< how many of m_block's bytes are the message's
    std::uint64_t m_length = 0;             ///< the message's length in bytes
};

/// The SHA-256 digest of `data`.
std::array<std::uint8_t, 32> sha256(std::string_view data);

/// The SHA-256 digest of `data` as 64 lowercase hex digits (what sha256sum prints).
std::string sha256_hex(std::string_view data);

} // namespace agentlock
