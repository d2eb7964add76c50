#pragma once
// Structured log events, the operators' interface: one line per event in logfmt text, JSON, or
// native journal entries with every field as a journal field.

#include <agentlock/log_level.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace spdlog {
class logger;
namespace sinks {
class sink;
}
} // namespace spdlog

namespace agentlock::daemon {

// The daemon's code and tests name these as daemon::LogLevel and so on.
using agentlock::Fields;
using agentlock::LogFormat;
using agentlock::LogLevel;

/// "SIGTERM", ... for a log field; "signal N" for a number without a name.
std::string signal_name(int signal_number);

/// The names joined with ',' (in the set's order) for a log field.
std::string join_names(const std::set<std::string>& names);

/// syslog(3) priority of a level, for the journal's PRIORITY= field.
int syslog_priority(LogLevel level);

/// RFC 3339 in UTC with milliseconds: 2026-11-27T05:15:43.123Z.
std::string format_log_timestamp(std::chrono::system_clock::time_point t);

/// `event key=value ...` in logfmt. A value is quoted when it is empty or holds a space, '=',
/// '"', '\\', a control character or invalid UTF-8; inside quotes \" \\ \n \r \t are escaped and
/// other control or invalid bytes become \xNN.
std::string format_logfmt(std::string_view event, const Fields& fields);

/// One text log line: `<ts> <level> <logfmt>`.
std::string format_text_line(std::chrono::system_clock::time_point t, LogLevel level,
                             std::string_view event, const Fields& fields);

/// One JSON object on one line: {"ts":..., "level":..., "event":..., <fields>}. Fields are
/// strings, except whole-number fields (pid and the pass counters, see docs/logging.md), which
/// are JSON numbers. Always valid JSON and valid UTF-8.
std::string format_json_line(std::chrono::system_clock::time_point t, LogLevel level,
                             std::string_view event, const Fields& fields);

/// Journal field name for an event field: "AGENTLOCK_" + the key in upper case, with every
/// character outside [A-Z0-9_] mapped to '_', cut to the journal's 64-character limit.
std::string journal_field_name(std::string_view key);

/// The journal entry for an event as "NAME=value" strings: MESSAGE (the logfmt text), PRIORITY,
/// SYSLOG_IDENTIFIER=agentlockd, AGENTLOCK_EVENT, then one AGENTLOCK_<KEY> per field.
std::vector<std::string> journal_entry(LogLevel level, std::string_view event,
                                       const Fields& fields);

/// True when `journal_stream` (the JOURNAL_STREAM value, "<dev>:<ino>") names the file open on
/// `fd`, i.e. that output goes to the journal.
bool journal_stream_matches(const char* journal_stream, int fd);

/// `automatic` becomes journal when stderr is connected to the journal, else text.
LogFormat resolve_log_format(LogFormat requested);

/// Writes events at or above a level in one format through spdlog. Thread-safe: the event loop
/// logs, and so does the worker thread while a pass streams its locks.
class EventLog {
public:
    /// Logs to stderr (text, json) or to the journal (journal); `automatic` is resolved here.
    EventLog(LogFormat format, LogLevel level);
    /// Logs every format's text to `sink` (tests); journal format still goes to the journal.
    EventLog(LogFormat format, LogLevel level, std::shared_ptr<spdlog::sinks::sink> sink);
    ~EventLog();
    EventLog(const EventLog&) = delete;
    EventLog& operator=(const EventLog&) = delete;

    /// Logs one event if `level` is enabled.
    void log(LogLevel level, std::string_view event, const Fields& fields = {});
    bool enabled(LogLevel level) const { return level >= m_level.load(); }
    void set_level(LogLevel level);
    /// Switches format (after a reload); `automatic` is resolved again.
    void set_format(LogFormat format);
    LogFormat format() const { return m_format.load(); } ///< never `automatic`
    LogLevel level() const { return m_level.load(); }

private:
    void rebuild(); // under m_mutex, or in a constructor

    std::mutex m_mutex; // one line at a time; guards m_logger
    std::atomic<LogFormat> m_format;
    std::atomic<LogLevel> m_level;
    std::shared_ptr<spdlog::sinks::sink> m_test_sink;
    std::shared_ptr<spdlog::logger> m_logger;
};

} // namespace agentlock::daemon
