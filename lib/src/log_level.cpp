#include <agentlock/log_level.hpp>

namespace agentlock {

std::string_view to_string(LogLevel level) {
    switch (level) {
    case LogLevel::trace:
        return "trace";
    case LogLevel::debug:
        return "debug";
    case LogLevel::info:
        return "info";
    case LogLevel::warn:
        return "warn";
    case LogLevel::error:
        return "error";
    }
    return "info";
}

std::string_view to_string(LogFormat format) {
    switch (format) {
    case LogFormat::automatic:
        return "auto";
    case LogFormat::text:
        return "text";
    case LogFormat::json:
        return "json";
    case LogFormat::journal:
        return "journal";
    }
    return "auto";
}

std::optional<LogLevel> parse_log_level(std::string_view text) {
    for (LogLevel l :
         {LogLevel::trace, LogLevel::debug, LogLevel::info, LogLevel::warn, LogLevel::error}) {
        if (text == to_string(l)) {
            return l;
        }
    }
    return std::nullopt;
}

std::optional<LogFormat> parse_log_format(std::string_view text) {
    for (LogFormat f :
         {LogFormat::automatic, LogFormat::text, LogFormat::json, LogFormat::journal}) {
        if (text == to_string(f)) {
            return f;
        }
    }
    return std::nullopt;
}

} // namespace agentlock
