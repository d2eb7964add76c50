#include <agentlock/lock_file.hpp>

#include <agentlock/fd.hpp>
#include <agentlock/text.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <fcntl.h>
#include <limits>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

namespace agentlock {

namespace {

namespace json = boost::json;
using std::chrono::nanoseconds;

constexpr std::int64_t k_ns_per_second = 1'000'000'000;

// ---------------------------------------------------------------------------------------------
// RFC 3339
//
// We accept what Go 1.19's time.Parse(time.RFC3339, s) accepts (that is what encoding/json uses
// for time.Time), with two deliberate differences on the safe side:
//   - Go reads the zone offset with atoi on two bytes each and checks no range ("+9x:99" and
//     "+-1:00" slip through); we require two digits each, hours < 24 and minutes < 60.
//   - Go represents years 0000..9999; a Timestamp (int64 nanoseconds since the epoch) spans
//     1677-09-21 .. 2262-04-11. Times outside that span are rejected, never clamped: clamping
//     would make a live owner look as if it started after its lock was acquired (a reused PID)
//     and get its lock removed. Go's zero time "0001-01-01T00:00:00Z" is therefore an invalid
//     lock, reported and kept.
// Like Go we accept a one-digit hour, ',' as the fraction separator and more than nine fractional
// digits (truncated to nanoseconds); like Go we accept only an upper-case 'T' and 'Z'.

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// Reads exactly `n` digits at s[pos]; advances pos.
bool fixed_digits(std::string_view s, std::size_t& pos, std::size_t n, int& out) {
    if (pos + n > s.size()) {
        return false;
    }
    int v = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (!is_digit(s[pos + i])) {
            return false;
        }
        v = v * 10 + (s[pos + i] - '0');
    }
    out = v;
    pos += n;
    return true;
}

bool literal(std::string_view s, std::size_t& pos, char c) {
    if (pos < s.size() && s[pos] == c) {
        ++pos;
        return true;
    }
    return false;
}

enum class TimeError { none, syntax, range, unrepresentable };

struct ParsedTime {
    TimeError error = TimeError::none;
    std::string what; // which part is wrong
    Timestamp value{};
};

ParsedTime bad(TimeError e, std::string what) {
    ParsedTime p;
    p.error = e;
    p.what = std::move(what);
    return p;
}

ParsedTime parse_time(std::string_view s) {
    std::size_t pos = 0;
    int year = 0;
    int month = 0;
    int day = 0;
    int hour = 0;
    int minute = 0;
    int second = 0;
    if (!fixed_digits(s, pos, 4, year) || !literal(s, pos, '-')) {
        return bad(TimeError::syntax, "year");
    }
    if (!fixed_digits(s, pos, 2, month) || !literal(s, pos, '-')) {
        return bad(TimeError::syntax, "month");
    }
    if (month < 1 || month > 12) {
        return bad(TimeError::range, "month");
    }
    if (!fixed_digits(s, pos, 2, day) || !literal(s, pos, 'T')) {
        return bad(TimeError::syntax, "day");
    }
    // Go's layout "15" takes one or two digits.
    if (!fixed_digits(s, pos, 2, hour) && !fixed_digits(s, pos, 1, hour)) {
        return bad(TimeError::syntax, "hour");
    }
    if (hour > 23) {
        return bad(TimeError::range, "hour");
    }
    if (!literal(s, pos, ':') || !fixed_digits(s, pos, 2, minute)) {
        return bad(TimeError::syntax, "minute");
    }
    if (minute > 59) {
        return bad(TimeError::range, "minute");
    }
    if (!literal(s, pos, ':') || !fixed_digits(s, pos, 2, second)) {
        return bad(TimeError::syntax, "second");
    }
    if (second > 59) {
        return bad(TimeError::range, "second"); // Go rejects leap seconds too
    }
    std::int64_t frac_ns = 0;
    if (pos + 1 < s.size() && (s[pos] == '.' || s[pos] == ',') && is_digit(s[pos + 1])) {
        ++pos;
        int digits = 0;
        while (pos < s.size() && is_digit(s[pos])) {
            if (digits < 9) {
                frac_ns = frac_ns * 10 + (s[pos] - '0');
                ++digits;
            }
            ++pos;
        }
        for (; digits < 9; ++digits) {
            frac_ns *= 10;
        }
    }
    std::int64_t offset_seconds = 0;
    if (literal(s, pos, 'Z')) {
        // UTC
    } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
        const bool negative = s[pos] == '-';
        ++pos;
        int oh = 0;
        int om = 0;
        if (!fixed_digits(s, pos, 2, oh) || !literal(s, pos, ':') || !fixed_digits(s, pos, 2, om)) {
            return bad(TimeError::syntax, "time zone offset");
        }
        if (oh > 23 || om > 59) {
            return bad(TimeError::range, "time zone offset");
        }
        offset_seconds = (negative ? -1 : 1) * (std::int64_t{oh} * 3600 + std::int64_t{om} * 60);
    } else {
        return bad(TimeError::syntax, "time zone (expected 'Z' or \xC2\xB1hh:mm)");
    }
    if (pos != s.size()) {
        return bad(TimeError::syntax, "trailing text");
    }
    const std::chrono::year_month_day ymd{std::chrono::year{year},
                                          std::chrono::month{static_cast<unsigned>(month)},
                                          std::chrono::day{static_cast<unsigned>(day)}};
    if (!ymd.ok()) {
        return bad(TimeError::range, "day");
    }
    const std::int64_t days = std::chrono::sys_days{ymd}.time_since_epoch().count();
    // Years 0000..9999 keep these products far inside int64; only the nanosecond scaling can
    // overflow.
    const std::int64_t secs = days * 86400 + std::int64_t{hour} * 3600 + std::int64_t{minute} * 60 +
                              std::int64_t{second} - offset_seconds;
    // Borrow a second for negative times so that the earliest Timestamp does not overflow on
    // the way.
    const bool borrow = secs < 0 && frac_ns > 0;
    std::int64_t ns = 0;
    if (__builtin_mul_overflow(borrow ? secs + 1 : secs, k_ns_per_second, &ns) ||
        __builtin_add_overflow(ns, borrow ? frac_ns - k_ns_per_second : frac_ns, &ns)) {
        return bad(TimeError::unrepresentable, "");
    }
    ParsedTime p;
    p.value = Timestamp{nanoseconds{ns}};
    return p;
}

// Civil fields of a Timestamp in UTC; floor division keeps times before 1970 right.
struct Civil {
    std::chrono::year_month_day ymd;
    std::int64_t hour, minute, second, nanos;
};

Civil civil(Timestamp t) {
    // Split without ever scaling back up: day * 86400e9 overflows near Timestamp::min().
    const std::int64_t ns = t.time_since_epoch().count();
    std::int64_t secs = ns / k_ns_per_second;
    std::int64_t nanos = ns % k_ns_per_second;
    if (nanos < 0) {
        nanos += k_ns_per_second;
        secs -= 1;
    }
    std::int64_t days = secs / 86400;
    std::int64_t in_day = secs % 86400;
    if (in_day < 0) {
        in_day += 86400;
        days -= 1;
    }
    const std::chrono::sys_days day{std::chrono::days{days}};
    return Civil{std::chrono::year_month_day{day}, in_day / 3600, in_day / 60 % 60, in_day % 60,
                 nanos};
}

// RFC 3339 in UTC without the zone letter; `nine_digits` false trims the fraction as Go's
// RFC3339Nano layout does (no dot at all for whole seconds).
std::string format_utc(Timestamp t, bool nine_digits) {
    const Civil c = civil(t);
    std::array<char, 64> buf{};
    const int n = std::snprintf(
        buf.data(), buf.size(), "%04d-%02u-%02uT%02" PRId64 ":%02" PRId64 ":%02" PRId64,
        static_cast<int>(c.ymd.year()), static_cast<unsigned>(c.ymd.month()),
        static_cast<unsigned>(c.ymd.day()), c.hour, c.minute, c.second);
    std::string out(buf.data(), n > 0 ? static_cast<std::size_t>(n) : 0);
    if (nine_digits || c.nanos != 0) {
        std::array<char, 16> frac{};
        (void)std::snprintf(frac.data(), frac.size(), ".%09" PRId64, c.nanos);
        std::string f(frac.data());
        if (!nine_digits) {
            while (f.back() == '0') {
                f.pop_back();
            }
        }
        out += f;
    }
    out += 'Z';
    return out;
}

// ---------------------------------------------------------------------------------------------
// JSON

// Go's encoding/json string encoder with HTML escaping (what Marshal and MarshalIndent use).
void append_go_string(std::string& out, std::string_view s) {
    static constexpr char k_hex[] = "0123456789abcdef";
    out += '"';
    std::size_t i = 0;
    while (i < s.size()) {
        const auto b = static_cast<unsigned char>(s[i]);
        if (b < 0x80) {
            switch (b) {
            case '\\':
                out += "\\\\";
                break;
            case '"':
                out += "\\\"";
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
                if (b < 0x20 || b == '<' || b == '>' || b == '&') {
                    out += "\\u00";
                    out += k_hex[b >> 4];
                    out += k_hex[b & 0xF];
                } else {
                    out += static_cast<char>(b);
                }
            }
            ++i;
            continue;
        }
        // One UTF-8 sequence, or a single invalid byte that Go writes as \ufffd.
        const std::size_t len = utf8_sequence_length(s, i);
        if (len == 0) {
            out += "\\ufffd";
            ++i;
            continue;
        }
        const std::string_view seq = s.substr(i, len);
        if (seq == "\xE2\x80\xA8" || seq == "\xE2\x80\xA9") {
            out += seq == "\xE2\x80\xA8" ? "\\u2028" : "\\u2029";
        } else {
            out += seq;
        }
        i += len;
    }
    out += '"';
}

// Go matches JSON keys to struct fields exactly or else case-insensitively, where U+017F (long
// s) folds to 's' and U+212A (Kelvin sign) to 'k'. Non-letters must match exactly.
bool go_key_matches(std::string_view name, std::string_view key) {
    std::size_t k = 0;
    for (const char n : name) {
        if (k >= key.size()) {
            return false;
        }
        const auto kb = static_cast<unsigned char>(key[k]);
        if (kb < 0x80) {
            const bool letter = (n >= 'a' && n <= 'z') || (n >= 'A' && n <= 'Z');
            const auto lower = [](unsigned char c) {
                return c >= 'A' && c <= 'Z' ? static_cast<unsigned char>(c + 32) : c;
            };
            if (kb != static_cast<unsigned char>(n) &&
                !(letter && lower(kb) == lower(static_cast<unsigned char>(n)))) {
                return false;
            }
            ++k;
            continue;
        }
        const std::string_view rest = key.substr(k);
        if ((n == 's' || n == 'S') && rest.substr(0, 2) == "\xC5\xBF") {
            k += 2;
        } else if ((n == 'k' || n == 'K') && rest.substr(0, 3) == "\xE2\x84\xAA") {
            k += 3;
        } else {
            return false;
        }
    }
    return k == key.size();
}

std::string quoted(std::string_view s) {
    std::string out;
    append_go_string(out, s);
    return out;
}

// Parse outcome before it is dressed as an Error (parse_lock) or a LockRead (read_lock_at).
struct Parsed {
    std::optional<LockInfo> info;
    std::string why; // set when info is empty
};

Parsed fail(std::string why) {
    return Parsed{std::nullopt, std::move(why)};
}

std::string field_text(std::string_view name) {
    return "field \"" + std::string(name) + "\"";
}

// Lock semantics, decided here once:
// - Unknown fields are ignored, as in Go.
// - null leaves a field unset, as in Go.
// - A field of the wrong type makes the lock invalid (Go's Unmarshal fails too), and so do our
//   extra fields: a wrong pid_start_ticks, boot_id, tmux_socket or tmux_server_pid is not something
//   our writer produces.
// - Go would accept a lock without "pid" or "acquired_at" and read zeros. We cannot judge such a
//   lock (PID 0 would read as dead, the zero time as "acquired before any process started"), so
//   it is invalid: reported and never removed.
// - Two keys that Go folds to the same field ("pid" and "PID") make the lock invalid. Go takes the
//   last one in document order, but the parsed object keeps exact duplicates at the position of
//   their first occurrence, so we could not tell which one Go reads. (Exact duplicates are fine:
//   the last value wins, as in Go.)
// Other known differences with Go: lone UTF-16 surrogate escapes such as "\ud800" (Go reads
// U+FFFD, Boost.JSON 1.81 rejects them: invalid, kept), and escapes inside the acquired_at string
// (Go parses its raw bytes and rejects them; we unescape first and read the time they spell).
// tests/interop/test_go_interop.cpp pins each difference against a real Go program.
Parsed parse_document(std::string_view text) {
    std::array<unsigned char, 4096> buffer{};
    json::monotonic_resource resource(buffer.data(), buffer.size());
    json::parse_options options;
    options.allow_invalid_utf8 = true; // Go reads invalid UTF-8 as U+FFFD; so do we, below
    options.max_depth = 10000;         // Go's maxNestingDepth
    json::stream_parser parser(&resource, options);
    boost::system::error_code ec;
    const std::size_t consumed = parser.write(text.data(), text.size(), ec);
    if (!ec) {
        parser.finish(ec);
    }
    if (ec) {
        return fail("not valid JSON (" + ec.message() + " at byte " + std::to_string(consumed) +
                    ")");
    }
    const json::value doc = parser.release();
    if (!doc.is_object()) {
        return fail("not a JSON object");
    }

    static constexpr std::array<std::string_view, 8> k_fields = {
        "pid",     "acquired_at", "session_id",     "hostname", "pid_start_ticks",
        "boot_id", "tmux_socket", "tmux_server_pid"};
    std::array<const json::value*, k_fields.size()> values{};
    std::array<std::string_view, k_fields.size()> keys{};
    for (const auto& member : doc.get_object()) {
        const std::string_view key = member.key();
        for (std::size_t f = 0; f < k_fields.size(); ++f) {
            if (!go_key_matches(k_fields[f], key)) {
                continue;
            }
            if (values[f] != nullptr) {
                return fail(field_text(k_fields[f]) + " appears more than once (as " +
                            quoted(to_valid_utf8(keys[f])) + " and " + quoted(to_valid_utf8(key)) +
                            ")");
            }
            keys[f] = key;
            values[f] = &member.value();
        }
    }
    const auto given = [&](std::size_t f) { return values[f] != nullptr && !values[f]->is_null(); };
    const auto string_field = [&](std::size_t f, std::string& out) -> std::optional<Parsed> {
        if (!given(f)) {
            return std::nullopt;
        }
        if (!values[f]->is_string()) {
            return fail(field_text(k_fields[f]) + " is not a string");
        }
        const json::string& s = values[f]->get_string();
        out = to_valid_utf8(std::string_view(s.data(), s.size()));
        return std::nullopt;
    };

    LockInfo info;
    // pid
    if (!given(0)) {
        return fail(field_text("pid") + " is missing");
    }
    if (values[0]->is_int64()) {
        info.pid = values[0]->get_int64();
    } else if (values[0]->is_uint64()) {
        return fail(field_text("pid") + " is out of range");
    } else {
        return fail(field_text("pid") + " is not an integer");
    }
    // acquired_at
    if (!given(1)) {
        return fail(field_text("acquired_at") + " is missing");
    }
    if (!values[1]->is_string()) {
        return fail(field_text("acquired_at") + " is not a string");
    }
    {
        const json::string& s = values[1]->get_string();
        const std::string_view text_time(s.data(), s.size());
        const ParsedTime t = parse_time(text_time);
        const std::string shown = quoted(to_valid_utf8(text_time));
        switch (t.error) {
        case TimeError::none:
            info.acquired_at = t.value;
            break;
        case TimeError::syntax:
            return fail(field_text("acquired_at") + " is not an RFC 3339 time: " + shown +
                        " (bad " + t.what + ")");
        case TimeError::range:
            return fail(field_text("acquired_at") + " is not an RFC 3339 time: " + shown + " (" +
                        t.what + " out of range)");
        case TimeError::unrepresentable:
            return fail(field_text("acquired_at") + " is outside the supported range " +
                        format_utc(Timestamp::min(), true) + " to " +
                        format_utc(Timestamp::max(), true) + ": " + shown);
        }
    }
    if (auto err = string_field(2, info.session_id)) {
        return std::move(*err);
    }
    if (auto err = string_field(3, info.hostname)) {
        return std::move(*err);
    }
    // pid_start_ticks (ours)
    if (given(4)) {
        if (values[4]->is_uint64()) {
            info.pid_start_ticks = values[4]->get_uint64();
        } else if (values[4]->is_int64() && values[4]->get_int64() >= 0) {
            info.pid_start_ticks = static_cast<std::uint64_t>(values[4]->get_int64());
        } else {
            return fail(field_text("pid_start_ticks") + " is not a non-negative integer");
        }
    }
    // boot_id (ours)
    if (given(5)) {
        std::string boot;
        if (auto err = string_field(5, boot)) {
            return std::move(*err);
        }
        info.boot_id = std::move(boot);
    }
    // tmux_socket and tmux_server_pid (ours)
    if (given(6)) {
        std::string socket;
        if (auto err = string_field(6, socket)) {
            return std::move(*err);
        }
        info.tmux_socket = std::move(socket);
    }
    if (given(7)) {
        if (!values[7]->is_int64() || values[7]->get_int64() <= 0) {
            return fail(field_text("tmux_server_pid") + " is not a positive integer");
        }
        info.tmux_server_pid = values[7]->get_int64();
    }
    return Parsed{std::move(info), {}};
}

Error invalid_error(std::string message) {
    Error e;
    e.kind = ErrorKind::invalid_lock;
    e.message = std::move(message);
    return e;
}

// ---------------------------------------------------------------------------------------------
// Files

std::string file_type_name(mode_t mode) {
    switch (mode & S_IFMT) {
    case S_IFDIR:
        return "a directory";
    case S_IFIFO:
        return "a FIFO";
    case S_IFSOCK:
        return "a socket";
    case S_IFCHR:
        return "a character device";
    case S_IFBLK:
        return "a block device";
    case S_IFLNK:
        return "a symlink";
    default:
        return "not a regular file";
    }
}

std::string dir_of(const std::string& path) {
    const auto slash = path.find_last_of('/');
    if (slash == std::string::npos) {
        return ".";
    }
    return slash == 0 ? "/" : path.substr(0, slash);
}

LockRead invalid_read(std::string message, std::string bytes = {}) {
    LockRead r;
    r.state = LockRead::State::invalid;
    r.message = std::move(message);
    r.bytes = std::move(bytes);
    return r;
}

LockRead io_read(std::string_view operation, const std::string& path, int saved_errno) {
    LockRead r;
    r.state = LockRead::State::io_error;
    r.message = io_error(operation, path, saved_errno).message;
    return r;
}

std::string too_large(const std::string& path, const std::string& size) {
    return path + " is too large (" + size + " bytes; the limit is " +
           std::to_string(k_max_lock_bytes) + ")";
}

// A name for the temporary file; O_EXCL makes a collision harmless (we retry).
std::string temp_name() {
    static constexpr char k_chars[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    std::array<unsigned char, 6> random{};
    if (::getrandom(random.data(), random.size(), GRND_NONBLOCK) !=
        static_cast<ssize_t>(random.size())) {
        // No entropy yet (early boot): the clock and PID still make collisions rare.
        auto seed = static_cast<std::uint64_t>(
                        std::chrono::steady_clock::now().time_since_epoch().count()) ^
                    (static_cast<std::uint64_t>(::getpid()) << 32);
        for (auto& r : random) {
            r = static_cast<unsigned char>(seed);
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            r = static_cast<unsigned char>(r ^ (seed >> 56));
        }
    }
    std::string name = ".agent.lock.tmp.";
    for (const unsigned char r : random) {
        name += k_chars[r % (sizeof k_chars - 1)];
    }
    return name;
}

} // namespace

Result<LockInfo> parse_lock(std::string_view json) {
    Parsed p = parse_document(json);
    if (!p.info) {
        return invalid_error("invalid lock file: " + p.why);
    }
    return std::move(*p.info);
}

std::string serialize_lock(const LockInfo& info) {
    std::string out = "{\n  \"pid\": " + std::to_string(info.pid) + ",\n  \"acquired_at\": \"" +
                      format_utc(info.acquired_at, false) + "\"";
    if (!info.session_id.empty()) {
        out += ",\n  \"session_id\": ";
        append_go_string(out, info.session_id);
    }
    if (!info.hostname.empty()) {
        out += ",\n  \"hostname\": ";
        append_go_string(out, info.hostname);
    }
    if (info.pid_start_ticks) {
        out += ",\n  \"pid_start_ticks\": " + std::to_string(*info.pid_start_ticks);
    }
    if (info.boot_id) {
        out += ",\n  \"boot_id\": ";
        append_go_string(out, *info.boot_id);
    }
    if (info.tmux_socket) {
        out += ",\n  \"tmux_socket\": ";
        append_go_string(out, *info.tmux_socket);
    }
    if (info.tmux_server_pid) {
        out += ",\n  \"tmux_server_pid\": " + std::to_string(*info.tmux_server_pid);
    }
    out += "\n}";
    return out;
}

std::optional<TmuxEnv> parse_tmux_env(std::string_view value) {
    const std::size_t last = value.rfind(',');
    if (last == std::string_view::npos || last == 0) {
        return std::nullopt;
    }
    const std::size_t middle = value.rfind(',', last - 1);
    if (middle == std::string_view::npos || middle == 0) {
        return std::nullopt;
    }
    const auto number = [](std::string_view text) -> std::optional<std::int64_t> {
        std::int64_t n = 0;
        auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
        if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) {
            return std::nullopt;
        }
        return n;
    };
    const auto pid = number(value.substr(middle + 1, last - middle - 1));
    const auto index = number(value.substr(last + 1));
    // tmux makes the socket path absolute before it exports it; the index is -1 outside a
    // session.
    if (!pid || *pid <= 0 || !index || value.front() != '/') {
        return std::nullopt;
    }
    return TmuxEnv{std::string(value.substr(0, middle)), *pid};
}

std::optional<Timestamp> parse_rfc3339(std::string_view text) {
    const ParsedTime t = parse_time(text);
    if (t.error != TimeError::none) {
        return std::nullopt;
    }
    return t.value;
}

std::string format_rfc3339(Timestamp t) {
    return format_utc(t, true);
}

std::string lock_path_for(std::string_view worker_dir) {
    std::string dir(worker_dir);
    while (dir.size() > 1 && dir.back() == '/') {
        dir.pop_back();
    }
    std::string tail = std::string(k_runtime_dir) + "/" + std::string(k_lock_name);
    if (dir.empty()) {
        return tail;
    }
    if (dir.back() != '/') {
        dir += '/';
    }
    return dir + tail;
}

LockRead read_lock_at(int runtime_fd, const std::string& lock_path) {
    const std::string name(k_lock_name);
    // Look before opening: opening a device node can have side effects, and a FIFO is never
    // opened at all. Should the file be swapped between this and the open, O_NOFOLLOW and
    // O_NONBLOCK still hold and the fstat below refuses anything but a regular file.
    struct stat st {};
    if (::fstatat(runtime_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        const int err = errno;
        if (err == ENOENT) {
            LockRead r;
            r.state = LockRead::State::absent;
            return r;
        }
        return io_read("stat", lock_path, err);
    }
    if (!S_ISREG(st.st_mode)) {
        return invalid_read(lock_path + " is " + file_type_name(st.st_mode));
    }
    if (static_cast<std::uint64_t>(st.st_size) > k_max_lock_bytes) {
        return invalid_read(too_large(lock_path, std::to_string(st.st_size)));
    }

    Fd fd(::openat(runtime_fd, name.c_str(),
                   O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    if (!fd) {
        const int err = errno;
        if (err == ENOENT) {
            LockRead r;
            r.state = LockRead::State::absent;
            return r;
        }
        if (err == ELOOP) {
            return invalid_read(lock_path + " is a symlink");
        }
        if (err == ENXIO) {
            return invalid_read(lock_path + " is a socket");
        }
        return io_read("open", lock_path, err);
    }
    if (::fstat(fd.get(), &st) != 0) {
        return io_read("stat", lock_path, errno);
    }
    if (!S_ISREG(st.st_mode)) {
        return invalid_read(lock_path + " is " + file_type_name(st.st_mode));
    }
    if (static_cast<std::uint64_t>(st.st_size) > k_max_lock_bytes) {
        return invalid_read(too_large(lock_path, std::to_string(st.st_size)));
    }

    // One byte more than the limit tells a file that grew since the fstat. The buffer starts
    // at the size fstat saw (plus that byte) and grows only if the file did: a lock is a few
    // hundred bytes, and a 64 KiB buffer per read would be kept by every invalid lock's record.
    std::string bytes(static_cast<std::size_t>(st.st_size) + 1, '\0');
    std::size_t got = 0;
    for (;;) {
        if (got == bytes.size()) {
            if (bytes.size() > k_max_lock_bytes) {
                break;
            }
            bytes.resize(std::min(2 * bytes.size(), k_max_lock_bytes + 1));
        }
        const ssize_t n = ::read(fd.get(), bytes.data() + got, bytes.size() - got);
        if (n < 0) {
            const int err = errno;
            if (err == EINTR) {
                continue;
            }
            return io_read("read", lock_path, err);
        }
        if (n == 0) {
            break;
        }
        got += static_cast<std::size_t>(n);
    }
    if (got > k_max_lock_bytes) {
        return invalid_read(too_large(lock_path, "more than " + std::to_string(k_max_lock_bytes)));
    }
    bytes.resize(got);

    Parsed p = parse_document(bytes);
    if (!p.info) {
        return invalid_read(lock_path + ": " + p.why, std::move(bytes));
    }
    LockRead r;
    r.state = LockRead::State::ok;
    r.info = std::move(p.info);
    r.bytes = std::move(bytes);
    return r;
}

Status write_lock_at(int runtime_fd, const std::string& lock_path, const LockInfo& info) {
    const std::string data = serialize_lock(info);
    const std::string dir = dir_of(lock_path);

    std::string tmp;
    Fd fd;
    for (int attempt = 0; attempt < 100 && !fd; ++attempt) {
        tmp = temp_name();
        fd.reset(::openat(runtime_fd, tmp.c_str(),
                          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
        if (!fd && errno != EEXIST) {
            return io_error("create", dir + "/" + tmp, errno);
        }
    }
    if (!fd) {
        return io_error("create", dir + "/" + tmp, EEXIST);
    }
    const std::string tmp_path = dir + "/" + tmp;
    // From here on every failure removes the temporary file, so a full disk leaves nothing.
    const auto abandon = [&](std::string_view operation, const std::string& path, int err) {
        fd.reset();
        (void)::unlinkat(runtime_fd, tmp.c_str(), 0); // best effort; the write already failed
        return io_error(operation, path, err);
    };

    std::size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
        if (n < 0) {
            const int err = errno;
            if (err == EINTR) {
                continue;
            }
            return abandon("write", tmp_path, err);
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fchmod(fd.get(), 0644) != 0) {
        return abandon("chmod", tmp_path, errno);
    }
    if (::fsync(fd.get()) != 0) {
        return abandon("fsync", tmp_path, errno);
    }
    // close() reports delayed write errors on some file systems (NFS); the fd is gone either way.
    if (::close(fd.release()) != 0) {
        return abandon("close", tmp_path, errno);
    }
    const std::string name(k_lock_name);
    if (::renameat(runtime_fd, tmp.c_str(), runtime_fd, name.c_str()) != 0) {
        return abandon("rename", lock_path, errno);
    }
    // The rename is done and visible; this makes it durable. EINVAL: the file system cannot sync
    // directories, and there is nothing more we can do.
    if (::fsync(runtime_fd) != 0 && errno != EINVAL) {
        return io_error("fsync", dir, errno);
    }
    return {};
}

} // namespace agentlock
