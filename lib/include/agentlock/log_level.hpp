#pragma once
// The names the config and the daemon's event log share: log levels, log formats and the
// ordered fields of one event.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace agentlock {

/// Ordered key=value pairs of one event; keys are lowercase identifiers.
using Fields = std::vector<std::pair<std::string, std::string>>;

enum class LogLevel { trace, debug, info, warn, error };
enum class LogFormat { automatic, text, json, journal };

std::string_view to_string(LogLevel level);   ///< "trace", "debug", "info", "warn", "error"
std::string_view to_string(LogFormat format); ///< "auto", "text", "json", "journal"
/// Parses a level name as written in the config and on the command line.
std::optional<LogLevel> parse_log_level(std::string_view text);
/// Parses "auto", "text", "json" or "journal".
std::optional<LogFormat> parse_log_format(std::string_view text);

} // namespace agentlock
