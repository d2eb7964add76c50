#include <agentlock/process_probe.hpp>

#include <agentlock/fd.hpp>

#include <cerrno>
#include <charconv>
#include <climits>
#include <csignal>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace agentlock {

namespace {

// /proc/<pid>/stat is a few hundred bytes; comm is at most 64 bytes even for kernel threads.
constexpr std::size_t k_max_stat_bytes = 8 * 1024;
// Field 22 (starttime) is the 20th field after field 2 (comm); field 3 (state) is the 1st.
constexpr int k_start_field_after_comm = 20;
// Start times more than this many seconds after boot are not real; clamping keeps the
// nanosecond arithmetic below from overflowing on a corrupt or fake stat file.
constexpr std::uint64_t k_max_seconds_since_boot = 100ULL * 365 * 24 * 3600;
// /proc/stat grows with CPUs and interrupt lines; a few hundred KiB on the largest hosts.
constexpr std::size_t k_max_proc_stat_bytes = 4 * 1024 * 1024;

std::string errno_text(int saved_errno) {
    return std::strerror(saved_errno);
}

// Reads a whole small file. Returns the bytes, or sets `saved_errno` and returns nullopt.
std::optional<std::string> read_small_file(const std::string& path, std::size_t cap,
                                           int& saved_errno) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!fd) {
        saved_errno = errno;
        return std::nullopt;
    }
    std::string out;
    char buf[1024];
    while (out.size() < cap) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            saved_errno = errno;
            return std::nullopt;
        }
        if (n == 0) {
            return out;
        }
        out.append(buf, static_cast<std::size_t>(n));
    }
    saved_errno = EFBIG;
    return std::nullopt;
}

// kill(pid, 0): 0 when the PID exists (EPERM counts: it exists, owned by someone else),
// otherwise the errno.
int signal_zero(pid_t pid) {
    if (::kill(pid, 0) == 0) {
        return 0;
    }
    int saved = errno;
    return saved == EPERM ? 0 : saved;
}

std::chrono::nanoseconds clock_now(clockid_t clock) {
    timespec ts{};
    if (::clock_gettime(clock, &ts) != 0) {
        // CLOCK_REALTIME and CLOCK_BOOTTIME exist on every kernel we run on; a failure here
        // is a programming error, not a runtime condition.
        return std::chrono::nanoseconds(0);
    }
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

ProcessFacts facts(ProcessState state, std::string detail = {}) {
    ProcessFacts f;
    f.state = state;
    f.detail = std::move(detail);
    return f;
}

} // namespace

SystemProcessProbe::SystemProcessProbe(std::string proc_root) : m_proc_root(std::move(proc_root)) {}

ProcessFacts SystemProcessProbe::probe(std::int64_t pid) {
    if (pid <= 0) {
        return facts(ProcessState::dead, "pid " + std::to_string(pid) + " is not a process");
    }
    if (pid > INT_MAX) {
        // pid_t is int; no process can have this PID (pid_max is at most 2^22).
        return facts(ProcessState::dead, "pid " + std::to_string(pid) + " is out of range");
    }
    const auto os_pid = static_cast<pid_t>(pid);
    const std::string pid_text = std::to_string(pid);

    int err = signal_zero(os_pid);
    if (err == ESRCH) {
        return facts(ProcessState::dead);
    }
    if (err != 0) {
        return facts(ProcessState::unknown, "kill " + pid_text + ": " + errno_text(err));
    }

    // From here on the PID exists. Anything /proc cannot tell us leaves the start facts unset,
    // which the judge reads as "unknown", never as "dead".
    const std::string stat_path = m_proc_root + "/" + pid_text + "/stat";
    int read_errno = 0;
    std::optional<std::string> text = read_small_file(stat_path, k_max_stat_bytes, read_errno);
    if (!text) {
        if (read_errno == ENOENT || read_errno == ESRCH) {
            // Either the process exited between kill() and open(), or this proc root does not
            // show it (a fake or foreign /proc). Only a second kill() can tell them apart.
            if (signal_zero(os_pid) == ESRCH) {
                return facts(ProcessState::dead);
            }
        }
        return facts(ProcessState::alive, "read " + stat_path + ": " + errno_text(read_errno));
    }

    std::optional<StatFields> fields = parse_proc_stat(*text);
    if (!fields) {
        return facts(ProcessState::alive, "parse " + stat_path + ": malformed stat line");
    }
    // 'X' (dead) is only ever seen for an instant, and older kernels printed it as 'x'.
    if (fields->state == 'Z' || fields->state == 'X' || fields->state == 'x') {
        return facts(ProcessState::zombie);
    }
    ProcessFacts f = facts(ProcessState::alive);
    f.start_ticks = fields->start_ticks;
    f.start_time = ticks_to_wall_time(fields->start_ticks);
    return f;
}

PidTableFacts SystemProcessProbe::pid_table() {
    PidTableFacts table;
    const std::string stat_path = m_proc_root + "/stat";
    int err = 0;
    if (auto text = read_small_file(stat_path, k_max_proc_stat_bytes, err)) {
        const ProcStatTotals totals = parse_proc_stat_totals(*text);
        table.forks_since_boot = totals.processes;
        if (totals.btime) {
            table.boot_time = Timestamp(std::chrono::seconds(*totals.btime));
        }
        if (!totals.processes || !totals.btime) {
            table.detail = "parse " + stat_path + ": no processes or btime line";
        }
    } else {
        table.detail = "read " + stat_path + ": " + errno_text(err);
    }
    const std::string pid_max_path = m_proc_root + "/sys/kernel/pid_max";
    if (auto text = read_small_file(pid_max_path, 64, err)) {
        std::string_view digits = *text;
        while (!digits.empty() && (digits.back() == '\n' || digits.back() == ' ')) {
            digits.remove_suffix(1);
        }
        std::uint64_t value = 0;
        auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
        if (ec == std::errc() && ptr == digits.data() + digits.size() && value > 0) {
            table.pid_max = value;
        } else {
            table.detail += (table.detail.empty() ? "" : "; ") + std::string("parse ") +
                            pid_max_path + ": not a number";
        }
    } else {
        table.detail += (table.detail.empty() ? "" : "; ") + std::string("read ") + pid_max_path +
                        ": " + errno_text(err);
    }
    return table;
}

ProcStatTotals parse_proc_stat_totals(std::string_view text) {
    // "key value" at the start of a line; nullopt unless the value is all digits.
    auto value_of = [](std::string_view line,
                       std::string_view key) -> std::optional<std::uint64_t> {
        if (line.size() <= key.size() + 1 || line.substr(0, key.size()) != key ||
            line[key.size()] != ' ') {
            return std::nullopt;
        }
        const std::string_view digits = line.substr(key.size() + 1);
        std::uint64_t value = 0;
        auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
        if (ec != std::errc() || ptr != digits.data() + digits.size()) {
            return std::nullopt;
        }
        return value;
    };
    ProcStatTotals totals;
    while (!text.empty()) {
        const std::size_t end = text.find('\n');
        const std::string_view line = text.substr(0, end);
        if (auto processes = value_of(line, "processes")) {
            totals.processes = processes;
        } else if (auto btime = value_of(line, "btime")) {
            if (*btime <= k_max_seconds_since_boot * 10) { // about year 5000: a real epoch time
                totals.btime = static_cast<std::int64_t>(*btime);
            }
        }
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    }
    return totals;
}

std::optional<StatFields> parse_proc_stat(std::string_view text) {
    // "pid (comm) S ppid ...": comm may contain anything, ')' and spaces included, so the
    // fields proper start after the LAST ')'.
    const std::size_t close = text.rfind(')');
    if (close == std::string_view::npos) {
        return std::nullopt;
    }
    const std::size_t open = text.find('(');
    if (open == std::string_view::npos || open > close) {
        return std::nullopt;
    }
    std::string_view rest = text.substr(close + 1);

    StatFields out;
    int index = 0; // 1 = state (field 3), ..., 20 = starttime (field 22)
    std::size_t pos = 0;
    while (index < k_start_field_after_comm) {
        if (pos >= rest.size() || rest[pos] != ' ') {
            return std::nullopt;
        }
        ++pos;
        const std::size_t end = rest.find_first_of(" \n", pos);
        const std::string_view field =
            rest.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
        if (field.empty()) {
            return std::nullopt;
        }
        ++index;
        if (index == 1) {
            if (field.size() != 1) {
                return std::nullopt;
            }
            out.state = field[0];
        } else if (index == k_start_field_after_comm) {
            const char* first = field.data();
            const char* last = field.data() + field.size();
            auto [ptr, ec] = std::from_chars(first, last, out.start_ticks);
            if (ec != std::errc() || ptr != last) {
                return std::nullopt;
            }
            return out;
        }
        if (end == std::string_view::npos) {
            return std::nullopt;
        }
        pos = end;
    }
    return std::nullopt;
}

Timestamp ticks_to_wall_time(std::uint64_t start_ticks) {
    // Boot time as wall-clock time, to the nanosecond: /proc/stat's btime is whole seconds.
    // It moves when the wall clock is stepped, exactly as "now" does, which is what a
    // comparison with acquired_at (also wall-clock) needs.
    const std::chrono::nanoseconds boot = clock_now(CLOCK_REALTIME) - clock_now(CLOCK_BOOTTIME);

    long hz = ::sysconf(_SC_CLK_TCK);
    if (hz <= 0) {
        hz = 100; // USER_HZ on every Linux architecture
    }
    const auto ticks_per_second = static_cast<std::uint64_t>(hz);
    std::uint64_t seconds = start_ticks / ticks_per_second;
    std::uint64_t rest_ticks = start_ticks % ticks_per_second;
    if (seconds > k_max_seconds_since_boot) {
        seconds = k_max_seconds_since_boot;
        rest_ticks = 0;
    }
    const std::chrono::nanoseconds since_boot =
        std::chrono::seconds(static_cast<std::int64_t>(seconds)) +
        std::chrono::nanoseconds(
            static_cast<std::int64_t>(rest_ticks * 1'000'000'000ULL / ticks_per_second));
    return Timestamp(boot + since_boot);
}

std::optional<std::uint64_t> own_start_ticks() {
    int err = 0;
    std::optional<std::string> text = read_small_file("/proc/self/stat", k_max_stat_bytes, err);
    if (!text) {
        return std::nullopt;
    }
    std::optional<StatFields> fields = parse_proc_stat(*text);
    if (!fields) {
        return std::nullopt;
    }
    return fields->start_ticks;
}

HostFacts read_host_facts() {
    HostFacts host;
    char name[HOST_NAME_MAX + 1] = {};
    if (::gethostname(name, sizeof name - 1) == 0) {
        host.hostname = name;
    }
    int err = 0;
    std::optional<std::string> boot_id =
        read_small_file("/proc/sys/kernel/random/boot_id", 256, err);
    if (boot_id) {
        std::string_view id = *boot_id;
        while (!id.empty() && (id.back() == '\n' || id.back() == ' ' || id.back() == '\r')) {
            id.remove_suffix(1);
        }
        host.boot_id = std::string(id);
    }
    return host;
}

} // namespace agentlock
