#include "journal_sink.hpp"

#include <agentlock/text.hpp>

#include <cerrno>
#include <string>
#include <sys/stat.h>
#include <sys/uio.h>
// CODE_FILE/CODE_LINE would always name this sink: leave them out.
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>
#include <unistd.h>
#include <vector>

namespace agentlock::daemon {

namespace {

struct CurrentEvent {
    LogLevel level;
    std::string_view event;
    const Fields* fields;
};

constexpr const char* k_journal_socket = "/run/systemd/journal/socket";

thread_local const CurrentEvent* t_current = nullptr;
thread_local CurrentEvent t_storage{};

LogLevel level_of(spdlog::level::level_enum level) {
    switch (level) {
    case spdlog::level::trace:
        return LogLevel::trace;
    case spdlog::level::debug:
        return LogLevel::debug;
    case spdlog::level::info:
        return LogLevel::info;
    case spdlog::level::warn:
        return LogLevel::warn;
    default:
        return LogLevel::error;
    }
}

// Last resort when journald is unreachable: the message goes to stderr.
void write_stderr(const std::string& text) {
    std::string line = text + "\n";
    const char* p = line.data();
    std::size_t left = line.size();
    while (left > 0) {
        const ssize_t n = ::write(STDERR_FILENO, p, left);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return; // nowhere left to report it
        }
        p += n;
        left -= static_cast<std::size_t>(n);
    }
}

} // namespace

JournalEventScope::JournalEventScope(LogLevel level, std::string_view event, const Fields& fields) {
    t_storage = CurrentEvent{level, event, &fields};
    t_current = &t_storage;
}

JournalEventScope::~JournalEventScope() {
    t_current = nullptr;
}

void JournalSink::sink_it_(const spdlog::details::log_msg& msg) {
    std::vector<std::string> entry;
    if (t_current != nullptr) {
        entry = journal_entry(t_current->level, t_current->event, *t_current->fields);
    } else {
        const std::string_view text(msg.payload.data(), msg.payload.size());
        entry = {"MESSAGE=" + escape_invalid_utf8(text),
                 "PRIORITY=" + std::to_string(syslog_priority(level_of(msg.level))),
                 "SYSLOG_IDENTIFIER=agentlockd"};
    }
    std::vector<iovec> iov;
    iov.reserve(entry.size());
    for (auto& e : entry) {
        iov.push_back(iovec{e.data(), e.size()});
    }
    // sd_journal_sendv reports success when journald's socket does not exist (ENOENT), so look
    // first: without journald the message must still go somewhere.
    struct stat st {};
    const bool journald_present = ::stat(k_journal_socket, &st) == 0;
    const int r =
        journald_present ? sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) : -1;
    if (r < 0) {
        write_stderr(std::string(msg.payload.data(), msg.payload.size()));
    }
}

} // namespace agentlock::daemon
