#include "event_log.hpp"

#include <agentlock/text.hpp>

#include "journal_sink.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iterator>
#include <spdlog/logger.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <sys/stat.h>

namespace agentlock::daemon {

int syslog_priority(LogLevel level) {
    switch (level) {
    case LogLevel::trace:
    case LogLevel::debug:
        return 7; // LOG_DEBUG
    case LogLevel::info:
        return 6; // LOG_INFO
    case LogLevel::warn:
        return 4; // LOG_WARNING
    case LogLevel::error:
        return 3; // LOG_ERR
    }
    return 6;
}

std::string signal_name(int signal_number) {
    const char* abbrev = ::sigabbrev_np(signal_number);
    return abbrev != nullptr ? std::string("SIG") + abbrev
                             : "signal " + std::to_string(signal_number);
}

std::string join_names(const std::set<std::string>& names) {
    std::string out;
    for (const auto& n : names) {
        out += out.empty() ? "" : ",";
        out += n;
    }
    return out;
}

std::string format_log_timestamp(std::chrono::system_clock::time_point t) {
    using namespace std::chrono;
    const auto ms = duration_cast<milliseconds>(t.time_since_epoch()).count();
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    long frac = static_cast<long>(ms % 1000);
    if (frac < 0) {
        frac += 1000;
        --secs;
    }
    std::tm tm{};
    if (::gmtime_r(&secs, &tm) == nullptr) {
        return "1970-01-01T00:00:00.000Z";
    }
    char buf[64];
    const int n =
        std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
    if (n < 0 || static_cast<std::size_t>(n) >= sizeof buf) {
        return "1970-01-01T00:00:00.000Z"; // cannot happen: the fields are bounded
    }
    return buf;
}

namespace {

void append_hex_escape(std::string& out, unsigned char c) {
    static constexpr char k_hex[] = "0123456789abcdef";
    out += "\\x";
    out += k_hex[c >> 4];
    out += k_hex[c & 0xF];
}

bool needs_quotes(std::string_view value) {
    if (value.empty()) {
        return true;
    }
    for (std::size_t i = 0; i < value.size();) {
        const auto c = static_cast<unsigned char>(value[i]);
        if (c <= 0x20 || c == 0x7F || c == '=' || c == '"' || c == '\\') {
            return true;
        }
        const std::size_t len = utf8_sequence_length(value, i);
        if (len == 0) {
            return true;
        }
        i += len;
    }
    return false;
}

void append_logfmt_value(std::string& out, std::string_view value) {
    if (!needs_quotes(value)) {
        out += value;
        return;
    }
    out += '"';
    for (std::size_t i = 0; i < value.size();) {
        const auto c = static_cast<unsigned char>(value[i]);
        const std::size_t len = utf8_sequence_length(value, i);
        if (len == 0) {
            append_hex_escape(out, c);
            ++i;
            continue;
        }
        if (len > 1) {
            out.append(value.substr(i, len));
            i += len;
            continue;
        }
        switch (c) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\r':
            out += "\\r";
            break;
        case '\t':
            out += "\\t";
            break;
        default:
            if (c < 0x20 || c == 0x7F) {
                append_hex_escape(out, c);
            } else {
                out += static_cast<char>(c);
            }
        }
        ++i;
    }
    out += '"';
}

spdlog::level::level_enum spdlog_level(LogLevel level) {
    switch (level) {
    case LogLevel::trace:
        return spdlog::level::trace;
    case LogLevel::debug:
        return spdlog::level::debug;
    case LogLevel::info:
        return spdlog::level::info;
    case LogLevel::warn:
        return spdlog::level::warn;
    case LogLevel::error:
        return spdlog::level::err;
    }
    return spdlog::level::info;
}

// Whole-number fields: written as JSON numbers (when the value is one) so consumers can compare
// them as numbers. Every other field is a JSON string.
bool is_numeric_field(std::string_view key) {
    static constexpr std::string_view k_numeric[] = {
        "pid",        "pass",          "root_count",        "roots_unavailable", "dirs",
        "locks",      "removed",       "would_remove",      "unreadable_dirs",   "collisions",
        "elapsed_ms", "open_findings", "symlinked_runtimes"};
    // The event sources' counts (events.started, check.completed, tmux.polled).
    static constexpr std::string_view k_event_numeric[] = {
        "checks",       "scans",   "pidfds",        "tmux_pidfds",
        "pidfd_budget", "watches", "polled_owners", "rechecks"};
    if (std::find(std::begin(k_event_numeric), std::end(k_event_numeric), key) !=
        std::end(k_event_numeric)) {
        return true;
    }
    return std::find(std::begin(k_numeric), std::end(k_numeric), key) != std::end(k_numeric);
}

std::optional<std::int64_t> parse_int64(std::string_view text) {
    std::int64_t value = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc() || ptr != end) {
        return std::nullopt;
    }
    return value;
}

} // namespace

std::string format_logfmt(std::string_view event, const Fields& fields) {
    std::string out(event);
    for (const auto& [key, value] : fields) {
        out += ' ';
        out += key;
        out += '=';
        append_logfmt_value(out, value);
    }
    return out;
}

std::string format_text_line(std::chrono::system_clock::time_point t, LogLevel level,
                             std::string_view event, const Fields& fields) {
    std::string out = format_log_timestamp(t);
    out += ' ';
    out += to_string(level);
    out += ' ';
    out += format_logfmt(event, fields);
    return out;
}

std::string format_json_line(std::chrono::system_clock::time_point t, LogLevel level,
                             std::string_view event, const Fields& fields) {
    boost::json::object obj;
    obj["ts"] = format_log_timestamp(t);
    obj["level"] = to_string(level);
    obj["event"] = escape_invalid_utf8(event);
    for (const auto& [key, value] : fields) {
        std::optional<std::int64_t> number;
        if (is_numeric_field(key)) {
            number = parse_int64(value);
        }
        if (number) {
            obj[escape_invalid_utf8(key)] = *number;
        } else {
            obj[escape_invalid_utf8(key)] = escape_invalid_utf8(value);
        }
    }
    return boost::json::serialize(obj);
}

std::string journal_field_name(std::string_view key) {
    static constexpr std::size_t k_max_journal_field = 64;
    std::string out = "AGENTLOCK_";
    for (char c : key) {
        if (c >= 'a' && c <= 'z') {
            out += static_cast<char>(c - 'a' + 'A');
        } else if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_') {
            out += c;
        } else {
            out += '_';
        }
    }
    if (out.size() > k_max_journal_field) {
        out.resize(k_max_journal_field);
    }
    return out;
}

std::vector<std::string> journal_entry(LogLevel level, std::string_view event,
                                       const Fields& fields) {
    std::vector<std::string> entry;
    entry.reserve(fields.size() + 4);
    entry.push_back("MESSAGE=" + format_logfmt(event, fields));
    entry.push_back("PRIORITY=" + std::to_string(syslog_priority(level)));
    entry.emplace_back("SYSLOG_IDENTIFIER=agentlockd");
    entry.push_back("AGENTLOCK_EVENT=" + escape_invalid_utf8(event));
    for (const auto& [key, value] : fields) {
        entry.push_back(journal_field_name(key) + "=" + escape_invalid_utf8(value));
    }
    return entry;
}

bool journal_stream_matches(const char* journal_stream, int fd) {
    if (journal_stream == nullptr || *journal_stream == '\0') {
        return false;
    }
    unsigned long long dev = 0;
    unsigned long long ino = 0;
    char extra = '\0';
    if (std::sscanf(journal_stream, "%llu:%llu%c", &dev, &ino, &extra) != 2) {
        return false;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        return false; // no stderr at all: certainly not the journal's stream
    }
    return static_cast<unsigned long long>(st.st_dev) == dev &&
           static_cast<unsigned long long>(st.st_ino) == ino;
}

LogFormat resolve_log_format(LogFormat requested) {
    if (requested != LogFormat::automatic) {
        return requested;
    }
    return journal_stream_matches(std::getenv("JOURNAL_STREAM"), 2) ? LogFormat::journal
                                                                    : LogFormat::text;
}

EventLog::EventLog(LogFormat format, LogLevel level)
    : m_format(resolve_log_format(format)), m_level(level) {
    rebuild();
}

EventLog::EventLog(LogFormat format, LogLevel level, std::shared_ptr<spdlog::sinks::sink> sink)
    : m_format(resolve_log_format(format)), m_level(level), m_test_sink(std::move(sink)) {
    rebuild();
}

EventLog::~EventLog() = default;

void EventLog::rebuild() {
    std::shared_ptr<spdlog::sinks::sink> sink = m_test_sink;
    if (!sink) {
        if (m_format.load() == LogFormat::journal) {
            sink = std::make_shared<JournalSink>();
        } else {
            sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
        }
    }
    // Not registered globally: this logger belongs to the EventLog alone.
    m_logger = std::make_shared<spdlog::logger>("agentlockd", std::move(sink));
    m_logger->set_pattern("%v");
    m_logger->set_level(spdlog_level(m_level.load()));
    m_logger->flush_on(spdlog::level::trace);
}

void EventLog::set_level(LogLevel level) {
    const std::lock_guard lock(m_mutex);
    m_level = level;
    m_logger->set_level(spdlog_level(level));
}

void EventLog::set_format(LogFormat format) {
    const LogFormat resolved = resolve_log_format(format);
    const std::lock_guard lock(m_mutex);
    if (resolved != m_format.load()) {
        m_format = resolved;
        rebuild();
    }
}

void EventLog::log(LogLevel level, std::string_view event, const Fields& fields) {
    if (!enabled(level)) {
        return;
    }
    const auto now = std::chrono::system_clock::now();
    const std::lock_guard lock(m_mutex);
    std::string line;
    switch (m_format.load()) {
    case LogFormat::json:
        line = format_json_line(now, level, event, fields);
        break;
    case LogFormat::journal:
        line = format_logfmt(event, fields);
        break;
    case LogFormat::text:
    case LogFormat::automatic:
        line = format_text_line(now, level, event, fields);
        break;
    }
    JournalEventScope scope(level, event, fields);
    m_logger->log(spdlog_level(level), "{}", line);
}

} // namespace agentlock::daemon
