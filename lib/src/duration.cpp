#include <agentlock/duration.hpp>

#include <cstdint>
#include <limits>

namespace agentlock {

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
    const std::string quoted = "\"" + std::string(text) + "\"";
    std::size_t i = 0;
    std::uint64_t number = 0;
    bool overflow = false;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        const auto digit = static_cast<std::uint64_t>(text[i] - '0');
        if (number > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) {
            overflow = true;
        } else {
            number = number * 10 + digit;
        }
        ++i;
    }
    if (i == 0) {
        return invalid_input(
            std::string(text),
            quoted + ": expected a number followed by a unit (ms, s, m, h), e.g. \"30s\"");
    }
    const std::string_view unit = text.substr(i);
    std::uint64_t factor = 0;
    if (unit == "ms") {
        factor = 1;
    } else if (unit == "s") {
        factor = 1000;
    } else if (unit == "m") {
        factor = 60 * 1000;
    } else if (unit == "h") {
        factor = 60 * 60 * 1000;
    } else if (unit.empty()) {
        return invalid_input(std::string(text),
                             quoted + ": missing unit (ms, s, m, h), e.g. \"30s\"");
    } else {
        return invalid_input(std::string(text), quoted + ": unknown unit \"" + std::string(unit) +
                                                    "\" (use ms, s, m or h)");
    }
    const auto max_ms = static_cast<std::uint64_t>(k_max_duration.count());
    if (overflow || number > max_ms / factor) {
        return invalid_input(std::string(text), quoted + ": too large (at most " +
                                                    format_duration(k_max_duration) + ")");
    }
    return std::chrono::milliseconds(static_cast<std::int64_t>(number * factor));
}

std::string format_duration(std::chrono::milliseconds duration) {
    const std::int64_t ms = duration.count();
    if (ms != 0 && ms % (60 * 60 * 1000) == 0) {
        return std::to_string(ms / (60 * 60 * 1000)) + "h";
    }
    if (ms != 0 && ms % (60 * 1000) == 0) {
        return std::to_string(ms / (60 * 1000)) + "m";
    }
    if (ms != 0 && ms % 1000 == 0) {
        return std::to_string(ms / 1000) + "s";
    }
    return std::to_string(ms) + "ms";
}

} // namespace agentlock
