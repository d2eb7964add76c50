#pragma once
// Text helpers shared by every JSON writer (reports and logs).

#include <string>
#include <string_view>

namespace agentlock {

/// `text` with each byte that is not part of valid UTF-8 replaced by U+FFFD, so that paths with
/// arbitrary bytes can go into JSON. Valid input is returned unchanged.
std::string to_valid_utf8(std::string_view text);

} // namespace agentlock
