#pragma once
// Text helpers shared by every JSON writer (reports and logs).

#include <cstddef>
#include <string>
#include <string_view>

namespace agentlock {

/// Length of the valid UTF-8 sequence starting at text[i] (no overlong forms, no surrogates,
/// nothing above U+10FFFF, as Go's utf8.DecodeRune sees it), or 0 when the byte there starts none.
std::size_t utf8_sequence_length(std::string_view text, std::size_t i);

/// `text` with each byte that is not part of valid UTF-8 replaced by U+FFFD, so that paths with
/// arbitrary bytes can go into JSON. Valid input is returned unchanged.
std::string to_valid_utf8(std::string_view text);

/// `text` with each byte that is not part of valid UTF-8 written as the four characters `\xNN`
/// (lower-case hex), as agentlockd's logs write them, so that a path with arbitrary bytes goes
/// into JSON or a journal field (both require valid UTF-8) and can still be told apart from its
/// neighbours and typed back. Valid input is returned unchanged.
std::string escape_invalid_utf8(std::string_view text);

} // namespace agentlock
