#pragma once
// Durations as operators write them: "500ms", "30s", "5m", "1h".

#include <agentlock/result.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace agentlock {

/// The longest duration accepted anywhere (a week), far below any clock overflow.
inline constexpr std::chrono::milliseconds k_max_duration = std::chrono::hours(24 * 7);

/// Parses a whole number followed by a unit (ms, s, m, h): "500ms", "30s", "5m", "1h". A
/// failure is an `invalid` Error whose message says why, e.g. `"5x": unknown unit "x"`; the
/// caller names the key or flag.
Result<std::chrono::milliseconds> parse_duration(std::string_view text);

/// Formats with the largest unit that divides it exactly: 500ms, 30s, 5m, 1h.
std::string format_duration(std::chrono::milliseconds duration);

} // namespace agentlock
