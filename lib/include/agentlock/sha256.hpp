#pragma once
// SHA-256 (FIPS 180-4), for names derived from paths (gastown's tmux socket names). Not for
// secrets: no constant-time guarantees are made.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace agentlock {

/// The SHA-256 digest of `data`.
std::array<std::uint8_t, 32> sha256(std::string_view data);

/// The SHA-256 digest of `data` as 64 lowercase hex digits (what sha256sum prints).
std::string sha256_hex(std::string_view data);

} // namespace agentlock
