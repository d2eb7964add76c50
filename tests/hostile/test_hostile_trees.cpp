// Hostile worker trees under the real agentlockd, run as root (and, for unreadable directories,
// as uid 65534): symlinks pointing outside the root and to /etc, symlink loops, special files
// named agent.lock, a 1 GiB sparse lock, 10,000 levels of nesting, hostile names, mount
// boundaries. Each case must finish (deadlines), must not crash, must be logged naming the path
// and the reason, and nothing outside the root may change: every file in the decoy directories
// and every /etc file a symlink points at is checksummed (SHA-256) before and after.

#include "e2e_support.hpp"
#include "test_support.hpp"
#include "tree_guard.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

namespace agentlock::hostile {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using e2e::DaemonProcess;
using e2e::DaemonSpec;
using e2e::int_of;
using e2e::lock_entry;
using e2e::LogEvent;
using e2e::member;
using e2e::RunResult;
using e2e::str_or;
using test::Child;
using test::exists;
using test::go_lock_json;
using test::local_hostname;
using test::make_dirs;
using test::write_file;

// Every --once run must end well within this; a hang is a failure, not a stuck suite.
constexpr auto k_once_deadline = 120s;

// ---------------------------------------------------------------------------------------------
// JSON helpers

// Report entries whose lock_path starts with `prefix`.
std::vector<json::object> lock_entries_under(const json::object& doc, const std::string& prefix) {
    std::vector<json::object> out;
    const json::value* locks = member(doc, "locks");
    if (locks == nullptr || !locks->is_array()) {
        return out;
    }
    for (const auto& l : locks->as_array()) {
        if (l.is_object() && str_or(l.as_object(), "lock_path").rfind(prefix, 0) == 0) {
            out.push_back(l.as_object());
        }
    }
    return out;
}

std::optional<long long> stat_of(const json::object& doc, std::string_view key) {
    const json::value* s = member(doc, "stats");
    return (s != nullptr && s->is_object()) ? int_of(s->as_object(), key) : std::nullopt;
}

// How the daemon writes a path in a JSON log line (docs/logging.md): bytes that are not UTF-8
// become the four characters \xNN; everything else is kept (JSON escapes are undone by parsing).
std::string as_logged(const std::string& raw) {
    std::string out;
    const auto* s = reinterpret_cast<const unsigned char*>(raw.data());
    const std::size_t n = raw.size();
    std::size_t i = 0;
    while (i < n) {
        const unsigned char c = s[i];
        std::size_t len = 0;
        if (c < 0x80) {
            len = 1;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
        }
        bool valid = len > 0 && i + len <= n;
        for (std::size_t k = 1; valid && k < len; ++k) {
            valid = (s[i + k] & 0xC0) == 0x80;
        }
        if (valid && len == 3) {
            const unsigned cp =
                ((c & 0x0FU) << 12) | ((s[i + 1] & 0x3FU) << 6) | (s[i + 2] & 0x3FU);
            valid = cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF);
        }
        if (valid && len == 4) {
            const unsigned cp = ((c & 0x07U) << 18) | ((s[i + 1] & 0x3FU) << 12) |
                                ((s[i + 2] & 0x3FU) << 6) | (s[i + 3] & 0x3FU);
            valid = cp >= 0x10000 && cp <= 0x10FFFF;
        }
        if (!valid) {
            static constexpr char k_hex[] = "0123456789abcdef";
            out += "\\x";
            out += k_hex[c >> 4];
            out += k_hex[c & 0xFU];
            ++i;
            continue;
        }
        out.append(raw, i, len);
        i += len;
    }
    return out;
}

// Parses every stderr line of a JSON-format run; a line that does not parse is a failure.
std::vector<json::object> parse_log_lines(const std::string& err) {
    std::vector<json::object> out;
    std::size_t start = 0;
    while (start < err.size()) {
        std::size_t end = err.find('\n', start);
        if (end == std::string::npos) {
            end = err.size();
        }
        const std::string line = err.substr(start, end - start);
        start = end + 1;
        std::string error;
        auto v = e2e::parse_json(line, &error);
        EXPECT_TRUE(v && v->is_object()) << "log line does not parse (" << error << "): " << line;
        if (v && v->is_object()) {
            out.push_back(v->as_object());
        }
    }
    return out;
}

std::vector<json::object> events_named(const std::vector<json::object>& events,
                                       std::string_view name, const std::string& lock_path = "") {
    std::vector<json::object> out;
    for (const auto& e : events) {
        if (str_or(e, "event") == name &&
            (lock_path.empty() || str_or(e, "lock_path") == lock_path)) {
            out.push_back(e);
        }
    }
    return out;
}

// The first `n` bytes of a file (without reading the rest).
std::string head_of(const std::string& path, std::size_t n) {
    std::string out(n, '\0');
    const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return "";
    }
    const ssize_t got = ::pread(fd, out.data(), n, 0);
    ::close(fd);
    out.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
    return out;
}

std::string dump(const json::object& o) {
    return json::serialize(o);
}

// ---------------------------------------------------------------------------------------------
// Fixture: a root and, beside it, decoy directories holding stale-looking locks that symlinks in
// the root point at. TearDown compares the outside world with the snapshot taken by guard().

class Hostile : public ::testing::Test, protected e2e::WorkerRoot {
protected:
    void SetUp() override {
        m_dir = e2e::real_path(m_tmp.path());
        m_root = m_dir + "/root";
        m_outside = m_dir + "/outside";
        make_dirs(m_root);
        m_tmux.new_session("anchor");

        // The decoys: what a symlink in the root may point at. Stale-looking, so a daemon that
        // followed a symlink would remove them.
        write_file(m_outside + "/.runtime/agent.lock", stale_json());
        write_file(m_outside + "/stale.lock", stale_json());
        write_file(m_outside + "/w/.runtime/agent.lock", stale_json());
        write_file(m_outside + "/w/.runtime/agent.lock.flock", "");
        write_file(m_outside + "/bindsrc/w/.runtime/agent.lock", stale_json());
        write_file(m_outside + "/hardlinked.lock", stale_json());
    }

    void TearDown() override {
        e2e::tear_down_daemon(m_daemon, HasFailure());
        if (m_guarded) {
            Snapshot after = snapshot_outside();
            auto diffs = after.differences_from(m_before);
            std::string text;
            for (const auto& d : diffs) {
                text += "  " + d + "\n";
            }
            EXPECT_TRUE(diffs.empty()) << "files outside the root changed:\n" << text;
            EXPECT_GT(m_before.entries.size(), 5u) << "the outside snapshot saw nothing";
        }
    }

    // The /etc files our symlinks point at, and the regular files directly in /etc (a symlink
    // points at /etc itself). ld.so.cache is left out: package installs by other jobs on this
    // machine rewrite it, and nothing here could.
    Snapshot snapshot_outside() const {
        Snapshot s;
        add_to_snapshot(s, m_outside);
        add_dir_files_to_snapshot(s, "/etc", {"ld.so.cache", "ld.so.cache~"});
        for (const auto& p : m_etc_targets) {
            add_entry_to_snapshot(s, p);
        }
        return s;
    }

    // Takes the "before" snapshot; call once the tree is built.
    void guard() {
        m_before = snapshot_outside();
        m_guarded = true;
    }

    void symlink(const std::string& target, const std::string& link) {
        make_dirs(fs::path(link).parent_path().string());
        ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0)
            << "symlink " << link << ": " << std::strerror(errno);
        if (target.rfind("/etc", 0) == 0) {
            m_etc_targets.push_back(target);
        }
    }

    struct Once {
        RunResult run;
        json::object doc;
        std::vector<json::object> events;
    };

    // agentlockd --once --json over our root with JSON logs on stderr; fails the test when it
    // does not finish, does not exit 0 or prints anything but one JSON document.
    Once once(const std::vector<std::string>& extra = {}) {
        std::vector<std::string> args{
            "--once",       "--json", "--root",      m_root, "--tmux-socket", m_tmux.socket_name(),
            "--log-format", "json",   "--log-level", "debug"};
        args.insert(args.end(), extra.begin(), extra.end());
        Once o;
        o.run = e2e::run_daemon(m_dir, args, k_once_deadline);
        EXPECT_FALSE(o.run.timed_out) << "agentlockd --once hung";
        EXPECT_TRUE(o.run.status.exited && o.run.status.code == 0)
            << "agentlockd --once: " << o.run.status.describe() << "\n"
            << o.run.err.substr(0, 4000);
        std::string error;
        auto v = e2e::parse_json(o.run.out, &error);
        EXPECT_TRUE(v && v->is_object()) << "stdout is not one JSON document (" << error << ")";
        if (v && v->is_object()) {
            o.doc = v->as_object();
        }
        o.events = parse_log_lines(o.run.err);
        return o;
    }

    // Starts the daemon over our root (200 ms passes, JSON logs, debug level) and waits until
    // `passes` passes have completed.
    DaemonProcess& run_daemon_for(std::size_t passes, const std::vector<std::string>& extra = {}) {
        DaemonSpec spec;
        spec.args = {"--root", m_root,        "--tmux-socket", m_tmux.socket_name(), "--log-format",
                     "json",   "--log-level", "debug",         "--interval",         "200ms"};
        spec.args.insert(spec.args.end(), extra.begin(), extra.end());
        m_daemon = std::make_unique<DaemonProcess>(m_dir, spec);
        EXPECT_TRUE(m_daemon->wait_for_nth_event("pass.completed", passes, 0, 120s))
            << "the daemon did not complete " << passes << " passes\n"
            << m_daemon->tail();
        return *m_daemon;
    }

    // SIGTERM, and a clean exit 0 within the deadline.
    void stop_daemon() {
        ASSERT_TRUE(m_daemon);
        ASSERT_TRUE(m_daemon->running()) << "the daemon died\n" << m_daemon->tail();
        m_daemon->send_signal(SIGTERM);
        auto st = m_daemon->wait_exit(30s);
        ASSERT_TRUE(st) << "no exit after SIGTERM\n" << m_daemon->tail();
        EXPECT_TRUE(st->exited && st->code == 0) << st->describe() << "\n" << m_daemon->tail();
    }

    // All events of the running daemon as JSON objects (every line must parse).
    std::vector<json::object> daemon_events() { return parse_log_lines(m_daemon->stderr_text()); }

    test::TempDir m_tmp;
    test::TmuxServerFixture m_tmux;
    std::string m_dir;
    std::string m_outside;
    std::vector<std::string> m_etc_targets;
    Snapshot m_before;
    bool m_guarded = false;
    std::unique_ptr<DaemonProcess> m_daemon;
};

// The SHA-256 the snapshots rely on, against FIPS 180-2's test vectors.
TEST(Sha256, MatchesTheStandardTestVectors) {
    EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(sha256_hex("abc"),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
              "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// =============================================================================================
// Symlinks

TEST_F(Hostile, SymlinkedRuntimePointingOutsideIsNeitherFollowedNorTouched) {
    symlink(m_outside + "/.runtime", runtime("w-symrt"));
    symlink(m_outside + "/w/.runtime", runtime("w-symrt-sidecar"));
    const std::string control = put_stale("w-control"); // proves the pass removes what it may
    guard();

    Once o = once();
    EXPECT_FALSE(exists(control)) << "the control stale lock was not removed: the test proves "
                                     "nothing\n"
                                  << o.run.err;
    EXPECT_TRUE(lock_entries_under(o.doc, worker("w-symrt")).empty()) << dump(o.doc);
    EXPECT_TRUE(events_named(o.events, "lock.removed", lock_path("w-symrt")).empty());
    EXPECT_TRUE(fs::is_symlink(runtime("w-symrt")));

    DaemonProcess& d = run_daemon_for(4);
    (void)d;
    stop_daemon();
    for (const auto& e : daemon_events()) {
        EXPECT_EQ(str_or(e, "lock_path").find(worker("w-symrt")), std::string::npos)
            << "an event about a lock behind a symlinked .runtime: " << dump(e);
    }
    EXPECT_TRUE(fs::is_symlink(runtime("w-symrt")));
}

// A symlinked .runtime is never followed, and the operator is told: agents that acquire through
// it (Lock::acquire refuses with ELOOP; other implementations may follow it) hold locks the
// daemon never judges. Reported in --once's JSON and as a runtime.symlinked finding naming the
// link's target; logged once while it stays, resolved when it goes.
TEST_F(Hostile, SymlinkedRuntimeIsReported) {
    symlink(m_outside + "/.runtime", runtime("w-symrt"));
    guard();
    Once o = once();
    ASSERT_TRUE(o.doc.contains("skipped_runtimes")) << dump(o.doc);
    const json::array& skipped = o.doc.at("skipped_runtimes").as_array();
    ASSERT_EQ(skipped.size(), 1u) << dump(o.doc);
    EXPECT_EQ(str_or(skipped[0].as_object(), "path"), runtime("w-symrt")) << dump(o.doc);
    EXPECT_NE(str_or(skipped[0].as_object(), "message").find(m_outside + "/.runtime"),
              std::string::npos)
        << dump(o.doc);
    EXPECT_EQ(o.doc.at("stats").as_object().at("symlinked_runtimes").to_number<int>(), 1)
        << dump(o.doc);
    auto logged = events_named(o.events, "runtime.symlinked");
    ASSERT_EQ(logged.size(), 1u) << o.run.err;
    EXPECT_EQ(str_or(logged[0], "level"), "warn") << dump(logged[0]);
    EXPECT_EQ(str_or(logged[0], "path"), runtime("w-symrt")) << dump(logged[0]);
    EXPECT_NE(str_or(logged[0], "reason").find("symlink to " + m_outside + "/.runtime"),
              std::string::npos)
        << dump(logged[0]);

    DaemonProcess& d = run_daemon_for(4);
    auto appeared = events_named(daemon_events(), "runtime.symlinked");
    ASSERT_EQ(appeared.size(), 1u) << "logged once over four passes\n" << d.tail();
    EXPECT_EQ(str_or(appeared[0], "state"), "appeared") << dump(appeared[0]);
    // Gone: resolved at the next full pass.
    ASSERT_EQ(::unlink(runtime("w-symrt").c_str()), 0) << std::strerror(errno);
    const std::size_t mark = d.event_count();
    d.send_signal(SIGUSR1);
    auto resolved = d.wait_for_event(
        "runtime.symlinked", [](const e2e::LogEvent& e) { return e.str("state") == "resolved"; },
        mark);
    ASSERT_TRUE(resolved) << d.tail();
    EXPECT_EQ(resolved->str("path"), runtime("w-symrt")) << d.tail();
    stop_daemon();
}

TEST_F(Hostile, SymlinkedLockFilesAreReportedInvalidAndKept) {
    symlink(m_outside + "/stale.lock", lock_path("w-out"));
    symlink("/etc/passwd", lock_path("w-etc"));
    symlink("../../w-out/.runtime/agent.lock", lock_path("w-chain")); // to another symlink
    guard();

    Once o = once();
    for (const auto& name : {"w-out", "w-etc", "w-chain"}) {
        auto e = lock_entry(o.doc, lock_path(name));
        ASSERT_TRUE(e) << name << " not reported\n" << dump(o.doc);
        EXPECT_EQ(str_or(*e, "verdict"), "invalid") << dump(*e);
        EXPECT_EQ(str_or(*e, "action"), "kept") << dump(*e);
        EXPECT_NE(str_or(*e, "reason").find("symlink"), std::string::npos) << dump(*e);
        auto logged = events_named(o.events, "lock.invalid", lock_path(name));
        ASSERT_EQ(logged.size(), 1u) << name << "\n" << o.run.err;
        EXPECT_NE(str_or(logged[0], "reason").find("symlink"), std::string::npos)
            << dump(logged[0]);
        EXPECT_TRUE(fs::is_symlink(lock_path(name)));
    }

    DaemonProcess& d = run_daemon_for(5);
    stop_daemon();
    auto events = daemon_events();
    for (const auto& name : {"w-out", "w-etc", "w-chain"}) {
        EXPECT_EQ(events_named(events, "lock.invalid", lock_path(name)).size(), 1u)
            << "logged once, when it appears\n"
            << d.tail();
        EXPECT_TRUE(fs::is_symlink(lock_path(name)));
    }
}

TEST_F(Hostile, SymlinkedSidecarIsNotFollowedAndTheLockIsKept) {
    const std::string to_etc = put_stale("w-side-etc");
    symlink("/etc/passwd", runtime("w-side-etc") + "/agent.lock.flock");
    const std::string to_out = put_stale("w-side-out");
    symlink(m_outside + "/w/.runtime/agent.lock.flock",
            runtime("w-side-out") + "/agent.lock.flock");
    guard();

    // The reaper cannot take part in the flock protocol through a symlink, so it cannot know the
    // lock is not being acquired: it keeps the lock and says which call failed.
    Once o = once();
    for (const auto& path : {to_etc, to_out}) {
        EXPECT_TRUE(exists(path)) << path;
        auto e = lock_entry(o.doc, path);
        ASSERT_TRUE(e) << dump(o.doc);
        EXPECT_EQ(str_or(*e, "action"), "kept") << dump(*e);
        auto failed = events_named(o.events, "lock.remove_failed", path);
        ASSERT_EQ(failed.size(), 1u) << o.run.err;
        EXPECT_NE(str_or(failed[0], "detail").find("agent.lock.flock"), std::string::npos)
            << dump(failed[0]);
        EXPECT_NE(str_or(failed[0], "detail").find(std::strerror(ELOOP)), std::string::npos)
            << dump(failed[0]);
    }
    EXPECT_EQ(stat_of(o.doc, "removed"), 0);
}

TEST_F(Hostile, SymlinkLoopsDoNotHang) {
    make_dirs(m_root + "/loop");
    symlink("b", m_root + "/loop/a");
    symlink("a", m_root + "/loop/b");
    symlink("self", m_root + "/loop/self");
    symlink("..", m_root + "/loop/up");
    symlink(".", m_root + "/loop/here");
    symlink(m_root, m_root + "/loop/to-root");
    symlink("agent.lock", lock_path("w-selflock"));
    make_dirs(worker("w-rt-dot"));
    symlink(".", runtime("w-rt-dot")); // .runtime -> its own worker
    make_dirs(worker("w-rt-parent"));
    symlink("../w-rt-parent", runtime("w-rt-parent"));
    const std::string control = put_stale("w-control");
    guard();

    Once o = once();
    EXPECT_FALSE(exists(control)) << o.run.err;
    auto e = lock_entry(o.doc, lock_path("w-selflock"));
    ASSERT_TRUE(e) << dump(o.doc);
    EXPECT_EQ(str_or(*e, "verdict"), "invalid") << dump(*e);
    EXPECT_EQ(events_named(o.events, "lock.invalid", lock_path("w-selflock")).size(), 1u);
    // Only the two real lock sites were found: nothing reached through a loop.
    EXPECT_EQ(stat_of(o.doc, "locks"), 2) << dump(o.doc);

    run_daemon_for(4);
    stop_daemon();
    EXPECT_TRUE(fs::is_symlink(lock_path("w-selflock")));
}

TEST_F(Hostile, SymlinksToEtcAreNeitherFollowedNorTouched) {
    symlink("/etc", m_root + "/etc-link");
    symlink("/etc", runtime("w-rt-etc"));
    symlink("/etc", worker("w-is-etc"));
    symlink("/etc/passwd", lock_path("w-lock-passwd"));
    symlink("/etc/hostname", lock_path("w-lock-hostname"));
    symlink("/etc/shadow", lock_path("w-lock-shadow"));
    const std::string stale = put_stale("w-sidecar-passwd");
    symlink("/etc/passwd", runtime("w-sidecar-passwd") + "/agent.lock.flock");
    const std::string control = put_stale("w-control");
    guard();

    Once o = once();
    EXPECT_FALSE(exists(control)) << o.run.err;
    EXPECT_TRUE(exists(stale));
    EXPECT_TRUE(lock_entries_under(o.doc, "/etc").empty()) << dump(o.doc);
    for (const auto& name : {"w-lock-passwd", "w-lock-hostname", "w-lock-shadow"}) {
        auto e = lock_entry(o.doc, lock_path(name));
        ASSERT_TRUE(e) << name;
        EXPECT_EQ(str_or(*e, "verdict"), "invalid") << dump(*e);
        EXPECT_EQ(events_named(o.events, "lock.invalid", lock_path(name)).size(), 1u);
    }
    auto removed = events_named(o.events, "lock.removed");
    ASSERT_EQ(removed.size(), 1u) << o.run.err;
    EXPECT_EQ(str_or(removed[0], "lock_path"), control) << "only the control may go";

    run_daemon_for(4);
    stop_daemon();
    EXPECT_TRUE(exists(stale));
    EXPECT_TRUE(fs::is_symlink(runtime("w-rt-etc")));
    EXPECT_TRUE(fs::is_symlink(worker("w-is-etc")));
}

// =============================================================================================
// Special files named agent.lock

enum class Special { fifo, socket, char_device, block_device };

std::string special_name(Special s) {
    switch (s) {
    case Special::fifo:
        return "fifo";
    case Special::socket:
        return "socket";
    case Special::char_device:
        return "char_device";
    case Special::block_device:
        return "block_device";
    }
    return "?";
}

class HostileSpecial : public Hostile, public ::testing::WithParamInterface<Special> {
protected:
    // Creates the special file; returns false (with `why`) when the machine does not allow it.
    bool make_special(const std::string& path, std::string& why) {
        make_dirs(fs::path(path).parent_path().string());
        switch (GetParam()) {
        case Special::fifo:
            if (::mkfifo(path.c_str(), 0644) != 0) {
                why = std::string("mkfifo: ") + std::strerror(errno);
                return false;
            }
            return true;
        case Special::socket: {
            // A bound socket that nobody accepts on: connecting would succeed into the backlog.
            sockaddr_un addr{};
            addr.sun_family = AF_UNIX;
            if (path.size() >= sizeof addr.sun_path) {
                why = "socket path too long";
                return false;
            }
            std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
            const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd >= 0) {
                m_socket_fds.push_back(fd);
            }
            if (fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
                ::listen(fd, 1) != 0) {
                why = std::string("socket: ") + std::strerror(errno);
                return false;
            }
            return true;
        }
        case Special::char_device:
        case Special::block_device: {
            const mode_t type = GetParam() == Special::char_device ? S_IFCHR : S_IFBLK;
            // /dev/null (1:3) and /dev/loop0 (7:0); nothing is ever opened for writing.
            const dev_t dev = GetParam() == Special::char_device ? makedev(1, 3) : makedev(7, 0);
            if (::mknod(path.c_str(), type | 0644, dev) != 0) {
                why = std::string("mknod: ") + std::strerror(errno);
                return false;
            }
            return true;
        }
        }
        return false;
    }

    void TearDown() override {
        Hostile::TearDown();
        for (int fd : m_socket_fds) {
            ::close(fd);
        }
    }

    std::vector<int> m_socket_fds;
};

TEST_P(HostileSpecial, NamedAgentLockIsReportedInvalidWithoutHangingAndKept) {
    std::string why;
    const std::string special = lock_path("w-special");
    if (!make_special(special, why)) {
        GTEST_SKIP() << "cannot create a " << special_name(GetParam()) << " here: " << why;
    }
    // Also as the sidecar of a stale lock, and as the .runtime directory itself.
    const std::string with_sidecar = put_stale("w-special-sidecar");
    ASSERT_TRUE(make_special(runtime("w-special-sidecar") + "/agent.lock.flock", why)) << why;
    make_dirs(worker("w-special-runtime"));
    ASSERT_TRUE(make_special(runtime("w-special-runtime"), why)) << why;
    const std::string control = put_stale("w-control");
    struct stat before {};
    ASSERT_EQ(::lstat(special.c_str(), &before), 0);
    guard();

    Once o = once();
    EXPECT_FALSE(exists(control)) << o.run.err;
    auto e = lock_entry(o.doc, special);
    ASSERT_TRUE(e) << dump(o.doc);
    EXPECT_EQ(str_or(*e, "verdict"), "invalid") << dump(*e);
    EXPECT_EQ(str_or(*e, "action"), "kept") << dump(*e);
    const std::string expected_word = GetParam() == Special::fifo          ? "FIFO"
                                      : GetParam() == Special::socket      ? "socket"
                                      : GetParam() == Special::char_device ? "character device"
                                                                           : "block device";
    EXPECT_NE(str_or(*e, "reason").find(expected_word), std::string::npos) << dump(*e);
    auto logged = events_named(o.events, "lock.invalid", special);
    ASSERT_EQ(logged.size(), 1u) << o.run.err;
    EXPECT_NE(str_or(logged[0], "reason").find(special), std::string::npos) << dump(logged[0]);
    // A special sidecar does not stop the protocol: flock works on any open file, and the
    // sidecar is opened O_NONBLOCK (a FIFO does not block the open).
    auto s = lock_entry(o.doc, with_sidecar);
    ASSERT_TRUE(s) << dump(o.doc);
    EXPECT_EQ(str_or(*s, "verdict"), "stale") << dump(*s);
    std::cerr << "stale lock with a " << special_name(GetParam())
              << " sidecar: " << str_or(*s, "action") << "\n";

    run_daemon_for(4);
    stop_daemon();
    EXPECT_EQ(events_named(daemon_events(), "lock.invalid", special).size(), 1u);
    struct stat after {};
    ASSERT_EQ(::lstat(special.c_str(), &after), 0) << "the special file is gone";
    EXPECT_EQ(after.st_mode & S_IFMT, before.st_mode & S_IFMT);
    EXPECT_EQ(after.st_ino, before.st_ino);
    EXPECT_EQ(after.st_rdev, before.st_rdev);
}

INSTANTIATE_TEST_SUITE_P(Types, HostileSpecial,
                         ::testing::Values(Special::fifo, Special::socket, Special::char_device,
                                           Special::block_device),
                         [](const ::testing::TestParamInfo<Special>& p) {
                             return special_name(p.param);
                         });

// =============================================================================================
// Size and depth

TEST_F(Hostile, SparseOneGibLockIsReportedTooLargeAndUntouched) {
    const std::string huge = lock_path("w-huge");
    const std::string head = "{\n  \"pid\": 1,\n";
    write_file(huge, head);
    constexpr off_t k_gib = off_t{1} << 30;
    ASSERT_EQ(::truncate(huge.c_str(), k_gib), 0) << std::strerror(errno);
    struct stat before {};
    ASSERT_EQ(::stat(huge.c_str(), &before), 0);
    const std::string control = put_stale("w-control");
    guard();

    Once o = once();
    EXPECT_FALSE(exists(control)) << o.run.err;
    auto e = lock_entry(o.doc, huge);
    ASSERT_TRUE(e) << dump(o.doc);
    EXPECT_EQ(str_or(*e, "verdict"), "invalid") << dump(*e);
    EXPECT_NE(str_or(*e, "reason").find("too large"), std::string::npos) << dump(*e);
    auto logged = events_named(o.events, "lock.invalid", huge);
    ASSERT_EQ(logged.size(), 1u) << o.run.err;
    EXPECT_NE(str_or(logged[0], "reason").find("1073741824"), std::string::npos) << dump(logged[0]);

    run_daemon_for(4);
    stop_daemon();
    EXPECT_EQ(events_named(daemon_events(), "lock.invalid", huge).size(), 1u);
    // Untouched: same size, same allocated blocks (nothing was written into the hole), same
    // mtime, same first bytes. (Hashing the whole GiB would take the test ten seconds.)
    struct stat after {};
    ASSERT_EQ(::stat(huge.c_str(), &after), 0);
    EXPECT_EQ(after.st_size, k_gib);
    EXPECT_EQ(after.st_blocks, before.st_blocks);
    EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
    EXPECT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
    EXPECT_EQ(head_of(huge, head.size()), head);
}

// Removes a 10,000-level chain without one fd per level, before TempDir's recursive removal.
struct ChainRemover {
    std::string parent;
    std::string name;
    ~ChainRemover() { remove_deep_chain(parent, name); }
};

TEST_F(Hostile, NestingTenThousandLevelsDeepWithASideBranchAtEveryLevel) {
    constexpr unsigned k_depth = 10000;
    ChainRemover remover{m_root, "d"};
    make_deep_chain(m_root, "d", k_depth, true);
    put_lock_at_depth(m_root, "d", k_depth, "w-stale", stale_json());
    Child owner = test::spawn_sleeper();
    const std::string live = go_lock_json(owner.pid(), e2e::rfc3339_now(), "", local_hostname());
    put_lock_at_depth(m_root, "d", k_depth, "w-live", live);
    guard();

    Once o = once();
    EXPECT_GE(stat_of(o.doc, "dirs").value_or(0), 2 * k_depth) << dump(o.doc);
    EXPECT_EQ(stat_of(o.doc, "unreadable_dirs"), 0) << dump(o.doc);
    EXPECT_EQ(stat_of(o.doc, "locks"), 2) << dump(o.doc);
    EXPECT_EQ(stat_of(o.doc, "removed"), 1) << dump(o.doc);
    EXPECT_FALSE(read_lock_at_depth(m_root, "d", k_depth, "w-stale"))
        << "the stale lock 10,000 levels down was not removed";
    EXPECT_EQ(read_lock_at_depth(m_root, "d", k_depth, "w-live"), live);
    auto removed = events_named(o.events, "lock.removed");
    ASSERT_EQ(removed.size(), 1u) << o.run.err.substr(0, 2000);
    const std::string path = str_or(removed[0], "lock_path");
    EXPECT_GT(path.size(), 2u * k_depth) << "the removal names the full path";
    EXPECT_EQ(path.substr(path.size() - std::string("/w-stale/.runtime/agent.lock").size()),
              "/w-stale/.runtime/agent.lock");

    // The running daemon: passes over the deep tree complete; the live lock stays.
    put_lock_at_depth(m_root, "d", k_depth, "w-stale", stale_json());
    DaemonProcess& d = run_daemon_for(3);
    ASSERT_TRUE(d.wait_for_event("lock.removed", nullptr, 0, 60s)) << d.tail();
    stop_daemon();
    EXPECT_FALSE(read_lock_at_depth(m_root, "d", k_depth, "w-stale"));
    EXPECT_EQ(read_lock_at_depth(m_root, "d", k_depth, "w-live"), live);
}

// =============================================================================================
// Unreadable directories: root reads mode 000 directories anyway, so the daemon runs as
// uid 65534 (nobody) for this case.

TEST_F(Hostile, UnreadableDirectoriesAreCountedAndLoggedAsAnotherUser) {
    constexpr uid_t k_nobody = 65534;
    ASSERT_EQ(::chmod(m_dir.c_str(), 0755), 0);
    ASSERT_EQ(::chmod(m_root.c_str(), 0755), 0);
    // A copy of the binary nobody can execute wherever the build tree lives.
    const std::string binary = m_dir + "/agentlockd";
    fs::copy_file(e2e::daemon_path(), binary);
    ASSERT_EQ(::chmod(binary.c_str(), 0755), 0);

    const std::string hidden = put_stale("locked/w");        // under a mode 000 directory
    const std::string unlisted = put_stale("noread/w");      // under a mode 0311 directory
    const std::string ours = put_stale("w-nobody");          // .runtime owned by nobody
    const std::string roots_only = put_stale("w-rootowned"); // .runtime owned by root, 0755
    ASSERT_EQ(::chown(runtime("w-nobody").c_str(), k_nobody, k_nobody), 0);
    ASSERT_EQ(::chmod(worker("locked").c_str(), 0000), 0);
    ASSERT_EQ(::chmod(worker("noread").c_str(), 0311), 0);
    guard();

    std::vector<std::string> args{"--once",       "--json", "--root",      m_root,
                                  "--log-format", "json",   "--log-level", "debug"};
    UserRun r = run_as_user(k_nobody, m_dir, binary, args, k_once_deadline);
    if (r.exited && r.code == 126) {
        GTEST_SKIP() << "cannot switch to uid " << k_nobody << " here";
    }
    ASSERT_FALSE(r.timed_out) << r.err;
    ASSERT_TRUE(r.exited && r.code == 0) << "exit " << r.code << "\n" << r.err;
    auto v = e2e::parse_json(r.out);
    ASSERT_TRUE(v && v->is_object()) << r.out;
    const json::object& doc = v->as_object();
    EXPECT_EQ(stat_of(doc, "unreadable_dirs"), 2) << dump(doc);
    // walk_errors name each directory and the reason.
    const json::value* errs = member(doc, "walk_errors");
    ASSERT_TRUE(errs != nullptr && errs->is_array()) << dump(doc);
    for (const auto& dir : {worker("locked"), worker("noread")}) {
        bool named = false;
        for (const auto& e : errs->as_array()) {
            const auto& o = e.as_object();
            named =
                named || (str_or(o, "path") == dir &&
                          str_or(o, "message").find(std::strerror(EACCES)) != std::string::npos &&
                          str_or(o, "message").find(dir) != std::string::npos);
        }
        EXPECT_TRUE(named) << dir << " not reported with its reason: " << dump(doc);
    }
    auto events = parse_log_lines(r.err);
    for (const auto& dir : {worker("locked"), worker("noread")}) {
        bool logged = false;
        for (const auto& e : events_named(events, "dir.unreadable")) {
            logged =
                logged || (str_or(e, "path") == dir &&
                           str_or(e, "error").find(std::strerror(EACCES)) != std::string::npos);
        }
        EXPECT_TRUE(logged) << "no dir.unreadable for " << dir << "\n" << r.err;
    }
    // What nobody can remove is reported and kept; what it can is removed; the hidden ones are
    // not even seen.
    EXPECT_FALSE(exists(ours)) << r.err;
    EXPECT_TRUE(exists(roots_only));
    auto failed = events_named(events, "lock.remove_failed", roots_only);
    ASSERT_EQ(failed.size(), 1u) << r.err;
    EXPECT_NE(str_or(failed[0], "detail").find(std::strerror(EACCES)), std::string::npos)
        << dump(failed[0]);
    ASSERT_EQ(::chmod(worker("locked").c_str(), 0755), 0);
    ASSERT_EQ(::chmod(worker("noread").c_str(), 0755), 0);
    EXPECT_TRUE(exists(hidden));
    EXPECT_TRUE(exists(unlisted));
    // The cleaner, running as another user, created nothing in the worker trees: a root-owned
    // sidecar would lock the agents out.
    EXPECT_FALSE(exists(runtime("w-rootowned") + "/agent.lock.flock"));
    EXPECT_FALSE(exists(runtime("w-nobody") + "/agent.lock.flock"));

    // The running daemon as nobody: the unreadable directories are logged once, and SIGTERM
    // stops it cleanly.
    ASSERT_EQ(::chmod(worker("locked").c_str(), 0000), 0);
    ASSERT_EQ(::chmod(worker("noread").c_str(), 0311), 0);
    args = {"--root",      m_root,  "--log-format", "json",
            "--log-level", "debug", "--interval",   "200ms"};
    UserRun running = run_as_user(k_nobody, m_dir, binary, args, 30s, 2s);
    EXPECT_TRUE(running.exited && running.code == 0)
        << "exit " << running.code << (running.timed_out ? " (timed out)" : "") << "\n"
        << running.err;
    events = parse_log_lines(running.err);
    EXPECT_GE(events_named(events, "pass.completed").size(), 3u) << running.err;
    for (const auto& dir : {worker("locked"), worker("noread")}) {
        std::size_t n = 0;
        for (const auto& e : events_named(events, "dir.unreadable")) {
            n += str_or(e, "path") == dir ? 1u : 0u;
        }
        EXPECT_EQ(n, 1u) << dir << " logged " << n << " times\n" << running.err;
    }
    EXPECT_FALSE(events_named(events, "daemon.stopping").empty()) << running.err;
    ASSERT_EQ(::chmod(worker("locked").c_str(), 0755), 0);
    ASSERT_EQ(::chmod(worker("noread").c_str(), 0755), 0);
    EXPECT_TRUE(exists(hidden));
    EXPECT_TRUE(exists(unlisted));
}

// =============================================================================================
// Hostile names

TEST_F(Hostile, NamesWithNewlinesControlBytesAndInvalidUtf8) {
    const std::vector<std::string> names = {
        "w\nnewline",
        "w-\xff\xfe-invalid-utf8",
        "w-\xc3\x28-bad-continuation",
        "w-\xe2\x82-truncated",
        "w-\x1b[31m-escape",
        "w\ttab\rcr",
        "w \"quoted\" \\ back=slash",
        "-leading-dash",
        "w-caf\xc3\xa9-valid-utf8",
        std::string(240, 'n'),
    };
    std::vector<std::string> stale;
    for (const auto& n : names) {
        stale.push_back(put_stale(n));
    }
    Child owner = test::spawn_sleeper();
    const std::string live = put_live("w\nlive\xff", owner);
    guard();

    Once o = once();
    EXPECT_EQ(stat_of(o.doc, "locks"), static_cast<long long>(names.size() + 1)) << o.run.out;
    EXPECT_EQ(stat_of(o.doc, "removed"), static_cast<long long>(names.size())) << o.run.out;
    for (std::size_t i = 0; i < names.size(); ++i) {
        EXPECT_FALSE(exists(stale[i])) << as_logged(stale[i]);
        auto removed = events_named(o.events, "lock.removed", as_logged(stale[i]));
        EXPECT_EQ(removed.size(), 1u) << "no lock.removed naming " << as_logged(stale[i]) << "\n"
                                      << o.run.err;
        if (!removed.empty()) {
            EXPECT_EQ(str_or(removed[0], "worker"), as_logged(worker(names[i])));
        }
    }
    EXPECT_TRUE(exists(live));
    EXPECT_TRUE(events_named(o.events, "lock.removed", as_logged(live)).empty());

    // Text format: still one event per line, no raw control bytes.
    put_stale(names[0]);
    RunResult text = e2e::run_daemon(
        m_dir,
        {"--once", "--root", m_root, "--tmux-socket", m_tmux.socket_name(), "--log-format", "text"},
        k_once_deadline);
    ASSERT_FALSE(text.timed_out);
    ASSERT_TRUE(text.status.exited && text.status.code == 0) << text.err;
    std::size_t lines = 0;
    for (std::size_t start = 0; start < text.err.size();) {
        std::size_t end = text.err.find('\n', start);
        if (end == std::string::npos) {
            end = text.err.size();
        }
        const std::string line = text.err.substr(start, end - start);
        start = end + 1;
        ++lines;
        EXPECT_EQ(line.find_first_of(std::string("\r\t\x1b", 3)), std::string::npos)
            << "a raw control byte in a text log line: " << line;
    }
    EXPECT_NE(text.err.find("lock.removed"), std::string::npos) << text.err;
    EXPECT_NE(text.err.find("\\n"), std::string::npos) << "the newline is escaped: " << text.err;

    // The running daemon.
    for (std::size_t i = 0; i < names.size(); ++i) {
        write_file(stale[i], stale_json());
    }
    DaemonProcess& d = run_daemon_for(3);
    for (std::size_t i = 0; i < names.size(); ++i) {
        EXPECT_TRUE(test::wait_until([&] { return !exists(stale[i]); })) << d.tail();
    }
    stop_daemon();
    auto events = daemon_events();
    for (std::size_t i = 0; i < names.size(); ++i) {
        EXPECT_EQ(events_named(events, "lock.removed", as_logged(stale[i])).size(), 1u)
            << as_logged(stale[i]);
    }
    EXPECT_TRUE(exists(live));
}

// =============================================================================================
// Mount boundaries

TEST_F(Hostile, TmpfsMountedInsideTheRootIsNotEntered) {
    make_dirs(m_root + "/tmpfs");
    MountGuard tmpfs("agentlock-hostile", m_root + "/tmpfs", "tmpfs", 0, "size=1m,mode=0755");
    if (!tmpfs.ok()) {
        GTEST_SKIP() << "mounting is not permitted here: " << tmpfs.error();
    }
    const std::string on_tmpfs = put_stale("tmpfs/w");
    const std::string control = put_stale("w-control");
    guard();

    Once o = once();
    EXPECT_FALSE(exists(control)) << o.run.err;
    EXPECT_TRUE(exists(on_tmpfs)) << "the walk crossed into a tmpfs mounted inside the root";
    EXPECT_TRUE(lock_entries_under(o.doc, m_root + "/tmpfs").empty()) << dump(o.doc);

    run_daemon_for(4);
    stop_daemon();
    EXPECT_TRUE(exists(on_tmpfs));

    // The test can see a crossing: with --no-one-file-system the tmpfs lock goes.
    Once crossing = once({"--no-one-file-system"});
    EXPECT_FALSE(exists(on_tmpfs)) << crossing.run.err;
    EXPECT_EQ(events_named(crossing.events, "lock.removed", on_tmpfs).size(), 1u);
}

// A bind mount of a directory outside the root, inside the root: the same file system (same
// st_dev) but another mount. Crossing it reaches outside the root: the decoy's stale lock, which
// lives in m_outside, would be removed.
TEST_F(Hostile, BindMountOfAnOutsideDirectoryIsNotCrossed) {
    make_dirs(m_root + "/bind");
    MountGuard bind(m_outside + "/bindsrc", m_root + "/bind", "", MS_BIND, "");
    if (!bind.ok()) {
        GTEST_SKIP() << "mounting is not permitted here: " << bind.error();
    }
    const std::string through_bind = m_root + "/bind/w/.runtime/agent.lock";
    ASSERT_TRUE(exists(through_bind));
    const std::string control = put_stale("w-control");
    guard();

    Once o = once();
    EXPECT_FALSE(exists(control)) << o.run.err;
    EXPECT_TRUE(exists(through_bind))
        << "the walk crossed a bind mount and removed a lock that lives outside the root";
    EXPECT_TRUE(lock_entries_under(o.doc, m_root + "/bind").empty()) << dump(o.doc);

    run_daemon_for(4);
    stop_daemon();
    EXPECT_TRUE(exists(through_bind));
}

// =============================================================================================
// A hard link to a file outside the root: removing the root's name leaves the outside file.

TEST_F(Hostile, HardLinkToAnOutsideFileLosesOnlyItsNameInTheRoot) {
    make_dirs(runtime("w-hard"));
    ASSERT_EQ(::link((m_outside + "/hardlinked.lock").c_str(), lock_path("w-hard").c_str()), 0)
        << std::strerror(errno);
    guard();
    Once o = once();
    EXPECT_FALSE(exists(lock_path("w-hard"))) << o.run.err;
    EXPECT_EQ(events_named(o.events, "lock.removed", lock_path("w-hard")).size(), 1u);
    EXPECT_TRUE(exists(m_outside + "/hardlinked.lock"));
}

// =============================================================================================
// Everything at once, under a running daemon that is poked with SIGUSR1 and SIGHUP.

TEST_F(Hostile, EverythingAtOnceUnderARunningDaemon) {
    symlink(m_outside + "/.runtime", runtime("w-symrt"));
    symlink(m_outside + "/stale.lock", lock_path("w-symlock"));
    symlink("/etc", m_root + "/etc-link");
    symlink("/etc/passwd", lock_path("w-passwd"));
    symlink("a", m_root + "/loop-b");
    symlink("loop-b", m_root + "/a");
    make_dirs(runtime("w-fifo"));
    ASSERT_EQ(::mkfifo(lock_path("w-fifo").c_str(), 0644), 0);
    write_file(lock_path("w-huge"), "{");
    ASSERT_EQ(::truncate(lock_path("w-huge").c_str(), off_t{1} << 30), 0);
    ChainRemover remover{m_root, "deep"};
    make_deep_chain(m_root, "deep", 3000, false);
    put_lock_at_depth(m_root, "deep", 3000, "w", stale_json());
    put_stale("w\nnew\xffline");
    Child owner = test::spawn_sleeper();
    const std::string live = put_live("w-live", owner);
    put_lock("w-garbage", "{\"pid\": \"not a number\"");
    guard();

    DaemonProcess& d = run_daemon_for(3);
    d.send_signal(SIGUSR1);
    d.send_signal(SIGHUP);
    std::size_t mark = d.event_count();
    ASSERT_TRUE(d.wait_for_nth_event("pass.completed", 3, mark, 60s)) << d.tail();
    stop_daemon();

    auto events = daemon_events();
    EXPECT_TRUE(exists(live));
    EXPECT_FALSE(read_lock_at_depth(m_root, "deep", 3000, "w"));
    EXPECT_FALSE(exists(lock_path("w\nnew\xffline")));
    for (const auto& name : {"w-symlock", "w-passwd", "w-fifo", "w-huge", "w-garbage"}) {
        EXPECT_EQ(events_named(events, "lock.invalid", lock_path(name)).size(), 1u) << name << "\n"
                                                                                    << d.tail();
        EXPECT_TRUE(exists(lock_path(name))) << name;
    }
    EXPECT_EQ(events_named(events, "lock.removed").size(), 2u) << d.tail();
    EXPECT_EQ(events_named(events, "daemon.stopping").size(), 1u);
    EXPECT_TRUE(events_named(events, "pass.failed").empty()) << d.tail();
    EXPECT_EQ(d.stdout_text(), "");
}

} // namespace
} // namespace agentlock::hostile
