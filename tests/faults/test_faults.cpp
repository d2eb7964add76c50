// Faults under the real agentlockd and the library: the tmux server killed and
// restarted mid-run and its socket deleted; the root deleted during a pass over a big tree,
// replaced by a file, recreated; a full disk (blocks, then inodes) while acquire writes its
// temporary file; the config replaced by many kinds of garbage, then SIGHUP; SIGTERM during a
// pass over a big tree with removals under way. In every case the daemon keeps running or exits
// cleanly when asked, logs clearly, and removes nothing live.
//
// Already covered by tests/e2e/test_daemon_e2e.cpp and not repeated here: a root removed and
// recreated while idle (RootRemovedAndRecreatedIsLoggedAndTheDaemonResumes), a tmux server that
// is not there at start and comes up later (TmuxUnreachableAndRecovered...), one garbage config
// and one unknown key on SIGHUP (SighupRejectsABadConfigAndKeepsTheOldOne), SIGTERM while idle
// or while tmux hangs (SigtermExitsZero, AHangingTmuxQueryBlocksNeitherTheWatchdogNorSigterm).

#include "e2e_support.hpp"
#include "test_support.hpp"
#include "tree_guard.hpp"

#include <agentlock/lock.hpp>

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace agentlock::faults {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using e2e::about_lock;
using e2e::DaemonProcess;
using e2e::DaemonSpec;
using e2e::LogEvent;
using hostile::MountGuard;
using test::Child;
using test::exists;
using test::go_lock_json;
using test::local_hostname;
using test::make_dirs;
using test::spawn_sleeper;
using test::write_file;

std::vector<std::string> dir_entries(const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) {
        out.push_back(e.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

class Faults : public ::testing::Test, protected e2e::WorkerRoot {
protected:
    void SetUp() override {
        m_dir = e2e::real_path(m_tmp.path());
        m_root = m_dir + "/root";
        make_dirs(m_root);
    }

    void TearDown() override {
        e2e::tear_down_daemon(m_daemon, HasFailure());
        m_notify.reset();
    }

    e2e::NotifyReceiver& notify() {
        if (!m_notify) {
            m_notify = std::make_unique<e2e::NotifyReceiver>(m_dir + "/notify.sock");
        }
        return *m_notify;
    }

    DaemonProcess& start(const std::vector<std::string>& args) {
        DaemonSpec spec;
        spec.args = args;
        spec.notify_socket = notify().path();
        m_daemon = std::make_unique<DaemonProcess>(m_dir, spec);
        return *m_daemon;
    }

    // Waits for `n` more completed passes; fails the test when they do not come.
    void passes(std::size_t n, std::chrono::milliseconds timeout = 30s) {
        const std::size_t mark = m_daemon->event_count();
        ASSERT_TRUE(m_daemon->wait_for_nth_event("pass.completed", n, mark, timeout))
            << m_daemon->tail();
    }

    // No lock.removed event names any of `paths`, and each still exists.
    void expect_kept(const std::vector<std::string>& paths) {
        for (const auto& p : paths) {
            EXPECT_TRUE(exists(p)) << "a live lock is gone: " << p << "\n" << m_daemon->tail();
            EXPECT_TRUE(m_daemon->find_events("lock.removed", about_lock(p)).empty())
                << "a live lock was removed: " << p;
        }
    }

    void stop_cleanly() {
        ASSERT_TRUE(m_daemon->running()) << m_daemon->tail();
        m_daemon->send_signal(SIGTERM);
        auto st = m_daemon->wait_exit(60s);
        ASSERT_TRUE(st) << "no exit after SIGTERM\n" << m_daemon->tail();
        EXPECT_TRUE(st->exited && st->code == 0) << st->describe() << "\n" << m_daemon->tail();
    }

    test::TempDir m_tmp;
    std::string m_dir;
    std::unique_ptr<e2e::NotifyReceiver> m_notify;
    std::unique_ptr<DaemonProcess> m_daemon;
};

// =============================================================================================
// tmux: the server killed mid-run and restarted; its socket deleted and recreated

TEST_F(Faults, TmuxServerKilledRestartedAndItsSocketDeleted) {
    test::TmuxServerFixture tmux;
    tmux.new_session("anchor");
    tmux.new_session("held");
    tmux.new_session("agent-s");
    Child owner = spawn_sleeper();
    Child owner2 = spawn_sleeper();
    const std::string held = put_stale("w-held", "held"); // dead PID, session alive: kept
    const std::string live_s = put_live("w-live-s", owner, "agent-s");
    const std::string live = put_live("w-live", owner2);
    DaemonProcess& d = start({"--root", m_root, "--tmux-socket", tmux.socket_name(), "--log-format",
                              "json", "--log-level", "debug", "--interval", "200ms"});
    ASSERT_TRUE(d.wait_for_event("lock.held_by_session", about_lock(held))) << d.tail();

    // 1. SIGKILL the server: its socket stays behind, nobody listens: "no server running",
    // which is definitive: no session exists, so the dead-PID lock of "held" is stale now.
    const pid_t spid = static_cast<pid_t>(
        std::stol(tmux.tmux("display-message -p -t anchor '#{pid}'").out.substr(0, 10)));
    ASSERT_GT(spid, 1);
    std::size_t mark = d.event_count();
    ASSERT_EQ(::kill(spid, SIGKILL), 0);
    ASSERT_TRUE(test::wait_until([&] { return ::kill(spid, 0) != 0; }));
    ASSERT_TRUE(exists(tmux.socket_path())) << "the killed server's socket should stay";
    auto removed = d.wait_for_event("lock.removed", about_lock(held), mark);
    ASSERT_TRUE(removed) << d.tail();
    EXPECT_EQ(removed->str("tmux_state"), "no-server") << removed->dump();
    EXPECT_EQ(removed->str("session_id"), "held") << removed->dump();
    // The live agent whose session died is orphaned, never removed.
    EXPECT_TRUE(d.wait_for_event("lock.orphaned", about_lock(live_s), mark)) << d.tail();
    passes(3);
    auto nosrv = d.find_events("pass.completed", nullptr, mark);
    ASSERT_FALSE(nosrv.empty());
    EXPECT_EQ(nosrv.back().str("tmux"), "no-server") << nosrv.back().dump();
    expect_kept({live_s, live});

    // 2. Restart the server on the same socket, with the agent's session again: live again.
    mark = d.event_count();
    tmux.new_session("anchor");
    tmux.new_session("agent-s");
    tmux.new_session("held2");
    const pid_t spid2 = static_cast<pid_t>(
        std::stol(tmux.tmux("display-message -p -t anchor '#{pid}'").out.substr(0, 10)));
    ASSERT_GT(spid2, 1);
    ASSERT_NE(spid2, spid);
    const std::string held2 = put_stale("w-held2", "held2");
    ASSERT_TRUE(d.wait_for_event("lock.held_by_session", about_lock(held2), mark)) << d.tail();
    auto resolved = d.wait_for_event(
        "lock.orphaned",
        [&](const LogEvent& e) { return about_lock(live_s)(e) && e.str("state") == "resolved"; },
        mark);
    EXPECT_TRUE(resolved) << "the orphaned finding did not resolve when the session came back\n"
                          << d.tail();

    // 3. Delete the socket while the server runs: tmux cannot be reached; that is unknown (it
    // may be a wrong socket), never a reason to remove a lock that records a session.
    mark = d.event_count();
    ASSERT_EQ(::unlink(tmux.socket_path().c_str()), 0) << std::strerror(errno);
    auto unreachable = d.wait_for_event("tmux.unreachable", nullptr, mark);
    ASSERT_TRUE(unreachable) << d.tail();
    EXPECT_EQ(unreachable->str("tmux_state"), "unknown") << unreachable->dump();
    EXPECT_FALSE(unreachable->str("tmux_detail").value_or("").empty()) << unreachable->dump();
    const std::string gone_session = put_stale("w-gone-session", "no-such-session");
    const std::string stale_plain = put_stale("w-stale-plain");
    // A lock that records no session does not need tmux: it still goes.
    EXPECT_TRUE(d.wait_for_event("lock.removed", about_lock(stale_plain), mark)) << d.tail();
    EXPECT_TRUE(d.wait_for_event("lock.unknown", about_lock(gone_session), mark)) << d.tail();
    passes(3);
    expect_kept({live_s, live, held2, gone_session});

    // 4. SIGUSR1 makes the tmux server recreate its socket: recovered; the lock of the session
    // that does not exist is stale now and goes; the others stay.
    mark = d.event_count();
    ASSERT_EQ(::kill(spid2, SIGUSR1), 0) << std::strerror(errno);
    ASSERT_TRUE(test::wait_until([&] { return exists(tmux.socket_path()); }))
        << "tmux did not recreate its socket";
    auto recovered = d.wait_for_event("tmux.recovered", nullptr, mark);
    ASSERT_TRUE(recovered) << d.tail();
    EXPECT_EQ(recovered->str("tmux_state"), "ok") << recovered->dump();
    EXPECT_TRUE(d.wait_for_event("lock.removed", about_lock(gone_session), mark)) << d.tail();
    passes(2);
    expect_kept({live_s, live, held2});
    EXPECT_TRUE(d.find_events("pass.failed").empty()) << d.tail();
    stop_cleanly();
}

// =============================================================================================
// An acquirer killed while it holds the sidecar flock, just as the owner dies

// With events on and full passes far apart, a stale lock is removed because an event (here the
// owner's pidfd) makes the daemon judge it again. If an acquirer holds the sidecar flock at that
// moment, the reaper rightly leaves the lock ("being acquired"). If the acquirer then dies (or
// gives up) without touching the lock, no event ever comes again: the lock must still go soon,
// not at the next full pass an hour later.
TEST_F(Faults, AnAcquirerKilledHoldingTheFlockDoesNotLeaveAStaleLockUntilTheNextFullPass) {
    test::TmuxServerFixture tmux;
    tmux.new_session("anchor");
    Child owner = spawn_sleeper();
    const std::string lock = put_live("w1", owner);
    const std::string sidecar = worker("w1") + "/.runtime/agent.lock.flock";
    write_file(sidecar, "");
    DaemonProcess& d =
        start({"--root", m_root, "--tmux-socket", tmux.socket_name(), "--log-format", "json",
               "--log-level", "debug", "--interval", "200ms", "--full-pass-interval", "1h"});
    auto started = d.wait_for_event("events.started");
    ASSERT_TRUE(started) << d.tail();
    if (started->str("pidfd") != "on") {
        GTEST_SKIP() << "no pidfd here: " << started->dump();
    }
    // The acquirer: a child that takes LOCK_EX on the sidecar and holds it until killed.
    const pid_t acquirer_pid = ::fork();
    ASSERT_GE(acquirer_pid, 0) << std::strerror(errno);
    if (acquirer_pid == 0) {
        const int fd = ::open(sidecar.c_str(), O_RDWR | O_CLOEXEC);
        if (fd < 0 || ::flock(fd, LOCK_EX) != 0) {
            ::_exit(1);
        }
        for (;;) {
            ::pause();
        }
    }
    Child acquirer(acquirer_pid);
    ASSERT_TRUE(test::wait_until([&] {
        const int fd = ::open(sidecar.c_str(), O_RDONLY | O_CLOEXEC);
        const bool held = fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
        if (fd >= 0) {
            ::close(fd);
        }
        return held;
    })) << "the acquirer never took the flock";

    const std::size_t mark = d.event_count();
    owner.kill_and_reap();
    auto skipped = d.wait_for_event("lock.skipped_changed", about_lock(lock), mark);
    ASSERT_TRUE(skipped) << "the owner's death did not lead to a re-check\n" << d.tail();
    EXPECT_EQ(skipped->str("trigger"), "pidfd") << skipped->dump();
    EXPECT_TRUE(exists(lock));

    // The acquirer dies holding the flock; the lock file is untouched: no inotify event.
    acquirer.kill_and_reap();
    auto removed = d.wait_for_event("lock.removed", about_lock(lock), mark, 10s);
    EXPECT_TRUE(removed) << "the stale lock was left for the next full pass (an hour away)\n"
                         << d.tail();
    EXPECT_TRUE(d.find_events("pass.completed", nullptr, mark).empty())
        << "a full pass ran: the test proves nothing";
    stop_cleanly();
}

// =============================================================================================
// The root deleted during a pass over a big tree, replaced by a file, then recreated

TEST_F(Faults, RootDeletedDuringAPassReplacedByAFileAndRecreated) {
    // A tree big enough that a pass takes a while; the deletion races the walk.
    for (int i = 0; i < 100; ++i) {
        const std::string top = m_root + "/d" + std::to_string(i);
        make_dirs(top);
        for (int j = 0; j < 150; ++j) {
            ASSERT_EQ(::mkdir((top + "/w" + std::to_string(j)).c_str(), 0755), 0);
        }
    }
    const std::string early_stale = put_stale("d0/w0");
    test::TmuxServerFixture tmux;
    tmux.new_session("anchor");
    DaemonProcess& d = start({"--root", m_root, "--tmux-socket", tmux.socket_name(), "--log-format",
                              "json", "--log-level", "debug", "--interval", "100ms"});
    ASSERT_TRUE(d.wait_for_event("lock.removed", about_lock(early_stale), 0, 60s)) << d.tail();

    // Delete it while passes run back to back (a pass takes longer than the interval).
    std::size_t mark = d.event_count();
    fs::remove_all(m_root);
    auto gone = d.wait_for_event("root.unavailable", nullptr, mark, 30s);
    ASSERT_TRUE(gone) << d.tail();
    EXPECT_EQ(gone->str("root"), m_root) << gone->dump();
    EXPECT_FALSE(gone->str("error").value_or("").empty()) << gone->dump();

    // A regular file where the root was: still unavailable, with a reason, no crash.
    write_file(m_root, "not a directory\n");
    passes(3);
    ASSERT_TRUE(d.running()) << d.tail();
    // Logged when it appears and when its reason changes (gone, then not a directory), not on
    // every pass.
    auto unavailable = d.find_events("root.unavailable", nullptr, mark);
    for (const auto& e : unavailable) {
        std::cerr << "root.unavailable " << e.str("state").value_or("") << ": "
                  << e.str("error").value_or("") << "\n";
    }
    ASSERT_GE(unavailable.size(), 1u);
    ASSERT_LE(unavailable.size(), 2u) << d.tail();
    EXPECT_EQ(unavailable[0].str("state"), "appeared") << unavailable[0].dump();
    if (unavailable.size() == 2) {
        EXPECT_EQ(unavailable[1].str("state"), "changed") << unavailable[1].dump();
        EXPECT_NE(unavailable[1].str("error").value_or("").find(std::strerror(ENOTDIR)),
                  std::string::npos)
            << unavailable[1].dump();
    }
    EXPECT_TRUE(d.find_events("pass.failed").empty()) << d.tail();

    // Recreated with a live lock and a stale one: recovered; the stale goes, the live stays.
    ASSERT_EQ(::unlink(m_root.c_str()), 0);
    mark = d.event_count();
    make_dirs(m_root);
    Child owner = spawn_sleeper();
    const std::string live = put_live("w-live", owner);
    const std::string stale = put_stale("w-stale");
    ASSERT_TRUE(d.wait_for_event("root.recovered", nullptr, mark)) << d.tail();
    ASSERT_TRUE(d.wait_for_event("lock.removed", about_lock(stale), mark)) << d.tail();
    passes(3);
    expect_kept({live});
    stop_cleanly();
}

// =============================================================================================
// A full disk while acquire writes its temporary file

class FullDisk : public Faults {
protected:
    // Mounts a small tmpfs at <dir>/fs with `options`; skips the test when mounting is not
    // permitted here.
    bool mount_small(const std::string& options) {
        m_fs = m_dir + "/fs";
        make_dirs(m_fs);
        m_mount = std::make_unique<MountGuard>("agentlock-full", m_fs, "tmpfs", 0, options);
        if (!m_mount->ok()) {
            m_skip_reason = m_mount->error();
            return false;
        }
        return true;
    }

    // Writes files until the file system says ENOSPC (blocks or inodes).
    void fill(bool inodes) {
        for (int i = 0;; ++i) {
            const std::string p = m_fs + "/filler-" + std::to_string(i);
            const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
            if (fd < 0) {
                ASSERT_EQ(errno, ENOSPC) << std::strerror(errno);
                return;
            }
            if (!inodes) {
                std::string block(4096, 'x');
                for (;;) {
                    if (::write(fd, block.data(), block.size()) < 0) {
                        ASSERT_EQ(errno, ENOSPC) << std::strerror(errno);
                        ::close(fd);
                        return;
                    }
                }
            }
            ::close(fd);
            ASSERT_LT(i, 1000000);
        }
    }

    void TearDown() override {
        Faults::TearDown();
        m_mount.reset();
    }

    std::string m_fs;
    std::string m_skip_reason;
    std::unique_ptr<MountGuard> m_mount;
};

TEST_F(FullDisk, AcquireFailsWithAClearIoErrorLeavesNoTempFileAndKeepsTheOldLock) {
    if (!mount_small("size=64k,mode=0755")) {
        GTEST_SKIP() << "mounting a tmpfs is not permitted here: " << m_skip_reason;
    }
    // The old lock: stale (dead PID), so acquire would take it over if it could write.
    const std::string w = m_fs + "/w";
    const std::string old = stale_json();
    write_file(w + "/.runtime/agent.lock", old);
    write_file(w + "/.runtime/agent.lock.flock", "");
    fill(false);

    Lock lock(w);
    const Status st = lock.acquire("s1");
    ASSERT_FALSE(st.ok()) << "acquire succeeded on a full file system";
    EXPECT_EQ(st.error().kind, ErrorKind::io) << st.error().message;
    EXPECT_EQ(st.error().code, std::error_code(ENOSPC, std::generic_category()))
        << st.error().message;
    EXPECT_NE(st.error().message.find(std::strerror(ENOSPC)), std::string::npos)
        << st.error().message;
    EXPECT_NE(st.error().message.find(w + "/.runtime/"), std::string::npos)
        << "the message names the path: " << st.error().message;
    EXPECT_EQ(test::read_file(w + "/.runtime/agent.lock"), old) << "the old lock changed";
    EXPECT_EQ(dir_entries(w + "/.runtime"),
              (std::vector<std::string>{"agent.lock", "agent.lock.flock"}))
        << "a temporary file was left behind";

    // Space again: the same acquire works (nothing was left half-done).
    ASSERT_EQ(::unlink((m_fs + "/filler-0").c_str()), 0);
    const Status again = lock.acquire("s1");
    ASSERT_TRUE(again.ok()) << again.error().message;
    auto info = lock.read();
    ASSERT_TRUE(info) << info.error().message;
    EXPECT_EQ(info->pid, ::getpid());
    EXPECT_EQ(dir_entries(w + "/.runtime"),
              (std::vector<std::string>{"agent.lock", "agent.lock.flock"}));
}

TEST_F(FullDisk, AcquireFailsCleanlyWhenNoInodeIsLeft) {
    if (!mount_small("size=1m,nr_inodes=64,mode=0755")) {
        GTEST_SKIP() << "mounting a tmpfs is not permitted here: " << m_skip_reason;
    }
    const std::string w = m_fs + "/w";
    const std::string old = stale_json();
    write_file(w + "/.runtime/agent.lock", old);
    write_file(w + "/.runtime/agent.lock.flock", "");
    fill(true);

    Lock lock(w);
    const Status st = lock.acquire("s1");
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().kind, ErrorKind::io) << st.error().message;
    EXPECT_EQ(st.error().code, std::error_code(ENOSPC, std::generic_category()))
        << st.error().message;
    EXPECT_NE(st.error().message.find(w + "/.runtime/"), std::string::npos) << st.error().message;
    EXPECT_EQ(test::read_file(w + "/.runtime/agent.lock"), old);
    EXPECT_EQ(dir_entries(w + "/.runtime"),
              (std::vector<std::string>{"agent.lock", "agent.lock.flock"}));
}

TEST_F(FullDisk, TheDaemonKeepsWorkingOnAFullFileSystem) {
    if (!mount_small("size=64k,mode=0755")) {
        GTEST_SKIP() << "mounting a tmpfs is not permitted here: " << m_skip_reason;
    }
    Child owner = spawn_sleeper();
    const std::string live = m_fs + "/w-live/.runtime/agent.lock";
    write_file(live, go_lock_json(owner.pid(), e2e::rfc3339_now(), "", local_hostname()));
    const std::string stale = m_fs + "/w-stale/.runtime/agent.lock";
    write_file(stale, stale_json());
    fill(false);
    test::TmuxServerFixture tmux;
    tmux.new_session("anchor");
    DaemonProcess& d = start({"--root", m_fs, "--tmux-socket", tmux.socket_name(), "--log-format",
                              "json", "--log-level", "debug", "--interval", "200ms"});
    // Removing needs no space: the stale lock goes, the live one stays, passes go on.
    ASSERT_TRUE(d.wait_for_event("lock.removed", about_lock(stale))) << d.tail();
    passes(3);
    EXPECT_TRUE(exists(live));
    EXPECT_TRUE(d.find_events("lock.removed", about_lock(live)).empty());
    EXPECT_TRUE(d.find_events("pass.failed").empty()) << d.tail();
    stop_cleanly();
}

// =============================================================================================
// The config replaced by garbage, then SIGHUP

TEST_F(Faults, GarbageConfigsOnSighupAreRejectedAndTheOldConfigStays) {
    test::TmuxServerFixture tmux;
    tmux.new_session("anchor");
    const std::string config = m_dir + "/agentlockd.json";
    const std::string good = "{\n  \"roots\": [\"" + m_root + "\"],\n  \"interval\": \"200ms\",\n" +
                             "  \"tmux_socket\": \"" + tmux.socket_name() +
                             "\",\n  \"log_format\": \"json\",\n  \"log_level\": \"debug\"\n}\n";
    write_file(config, good);
    Child owner = spawn_sleeper();
    const std::string live = put_live("w-live", owner);
    DaemonProcess& d = start({"--config", config});
    ASSERT_TRUE(notify().wait_for_key("READY", "1")) << d.tail();

    struct Garbage {
        std::string what;
        std::function<void()> make;
    };
    const std::string huge_key(1 << 20, 'k');
    std::vector<Garbage> garbage = {
        {"empty file", [&] { write_file(config, ""); }},
        {"truncated mid-write", [&] { write_file(config, good.substr(0, good.size() / 2)); }},
        {"binary bytes and NULs",
         [&] { write_file(config, std::string("\x00\xff\xfe{\x01\"roots\x00", 12)); }},
        {"invalid UTF-8 in a string",
         [&] { write_file(config, "{\"roots\": [\"/tmp/\xff\xfe\"], \"interval\": \"1s\"}"); }},
        {"a JSON array", [&] { write_file(config, "[1, 2, 3]"); }},
        {"deeply nested", [&] { write_file(config, std::string(100000, '[')); }},
        {"a 1 MiB key", [&] { write_file(config, "{\"" + huge_key + "\": 1}"); }},
        {"wrong type", [&] { write_file(config, "{\"interval\": [\"200ms\"]}"); }},
        {"bad duration", [&] { write_file(config, "{\"interval\": \"-5 parsecs\"}"); }},
        {"negative interval", [&] { write_file(config, "{\"interval\": \"-1s\"}"); }},
        {"zero interval",
         [&] { write_file(config, "{\"roots\": [\"" + m_root + "\"], \"interval\": \"0ms\"}"); }},
        {"unknown key", [&] { write_file(config, "{\"rootz\": [\"/\"]}"); }},
        {"duplicate key with garbage", [&] { write_file(config, "{\"roots\": 1, \"roots\": 2}"); }},
        {"missing file", [&] { fs::remove(config); }},
        {"a directory",
         [&] {
             fs::remove(config);
             make_dirs(config);
         }},
        {"a FIFO",
         [&] {
             fs::remove_all(config);
             ASSERT_EQ(::mkfifo(config.c_str(), 0644), 0);
         }},
        {"unreadable (a symlink loop)",
         [&] {
             fs::remove_all(config);
             ASSERT_EQ(::symlink(config.c_str(), config.c_str()), 0);
         }},
    };
    for (const auto& g : garbage) {
        SCOPED_TRACE(g.what);
        g.make();
        const std::size_t mark = d.event_count();
        const std::size_t n_mark = notify().count();
        d.send_signal(SIGHUP);
        auto rejected = d.wait_for_event("config.rejected", nullptr, mark, 20s);
        ASSERT_TRUE(rejected) << g.what << " was not rejected\n" << d.tail();
        EXPECT_EQ(rejected->str("level"), "error") << rejected->dump();
        EXPECT_EQ(rejected->str("config"), config) << rejected->dump().substr(0, 2000);
        EXPECT_FALSE(rejected->str("error").value_or("").empty()) << rejected->dump();
        std::cerr << g.what << ": " << rejected->str("error").value_or("").substr(0, 300) << "\n";
        EXPECT_TRUE(d.find_events("config.reloaded", nullptr, mark).empty()) << g.what;
        auto reloading = notify().wait_for_key("RELOADING", "1", n_mark);
        ASSERT_TRUE(reloading);
        EXPECT_TRUE(notify().wait_for_key("READY", "1", *reloading + 1)) << g.what;
        // The old config is in force: passes go on every 200 ms over our root, and a stale
        // lock still goes.
        const std::string stale = put_stale("w-stale");
        ASSERT_TRUE(d.wait_for_event("lock.removed", about_lock(stale), mark, 20s))
            << "the old config is not in force after " << g.what << "\n"
            << d.tail();
        ASSERT_TRUE(d.running()) << d.tail();
        fs::remove_all(config);
    }
    expect_kept({live});

    // A good config again is accepted.
    write_file(config, good);
    const std::size_t mark = d.event_count();
    d.send_signal(SIGHUP);
    EXPECT_TRUE(d.wait_for_event("config.reloaded", nullptr, mark)) << d.tail();
    EXPECT_TRUE(d.find_events("pass.failed").empty()) << d.tail();
    stop_cleanly();
}

// =============================================================================================
// SIGTERM during a pass over a big tree, while removals are under way

TEST_F(Faults, SigtermDuringAPassOverABigTreeExitsCleanlyAndRemovesNothingLive) {
    // 60,000 directories; 1,500 stale locks and 1,500 live ones spread through them.
    constexpr int k_tops = 100;
    constexpr int k_per_top = 600;
    std::vector<Child> owners;
    for (int i = 0; i < 15; ++i) {
        owners.push_back(spawn_sleeper());
    }
    std::vector<std::string> stale;
    std::vector<std::string> live;
    for (int i = 0; i < k_tops; ++i) {
        const std::string top = m_root + "/d" + std::to_string(i);
        make_dirs(top);
        for (int j = 0; j < k_per_top; ++j) {
            const std::string w = top + "/w" + std::to_string(j);
            ASSERT_EQ(::mkdir(w.c_str(), 0755), 0);
            if (j % 40 == 0) {
                stale.push_back(w + "/.runtime/agent.lock");
                write_file(stale.back(), stale_json());
            } else if (j % 40 == 20) {
                const Child& o = owners[live.size() % owners.size()];
                live.push_back(w + "/.runtime/agent.lock");
                write_file(live.back(),
                           go_lock_json(o.pid(), e2e::rfc3339_now(), "", local_hostname()));
            }
        }
    }
    test::TmuxServerFixture tmux;
    tmux.new_session("anchor");
    DaemonProcess& d = start({"--root", m_root, "--tmux-socket", tmux.socket_name(), "--log-format",
                              "json", "--log-level", "debug", "--interval", "200ms"});
    // SIGTERM as soon as the first removals show: the first pass is then under way.
    auto remaining = [&] {
        std::size_t n = 0;
        for (const auto& p : stale) {
            n += exists(p) ? 1u : 0u;
        }
        return n;
    };
    ASSERT_TRUE(test::wait_until([&] { return remaining() < stale.size(); }, 60s)) << d.tail();
    const std::size_t n_mark = notify().count();
    d.send_signal(SIGTERM);
    const std::size_t at_signal = remaining();
    const auto signalled = std::chrono::steady_clock::now();
    auto st = d.wait_exit(120s);
    ASSERT_TRUE(st) << "no exit after SIGTERM during a pass\n" << d.tail();
    const auto exit_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - signalled)
                             .count();
    EXPECT_TRUE(st->exited && st->code == 0) << st->describe() << "\n" << d.tail();
    auto stopping = d.wait_for_event("daemon.stopping", nullptr, 0, 1s);
    ASSERT_TRUE(stopping) << d.tail();
    EXPECT_EQ(stopping->str("signal"), "SIGTERM") << stopping->dump();
    EXPECT_TRUE(notify().wait_for_key("STOPPING", "1", n_mark, 2s));
    // Nothing live removed; every stale lock that went is accounted for by a lock.removed line
    // (no silent removal), and the cut-short pass says so.
    for (const auto& p : live) {
        ASSERT_TRUE(exists(p)) << "a live lock is gone: " << p;
    }
    std::size_t logged = 0;
    for (const auto& p : stale) {
        const bool removed_logged = !d.find_events("lock.removed", about_lock(p)).empty();
        EXPECT_EQ(!exists(p), removed_logged) << p;
        logged += removed_logged ? 1u : 0u;
    }
    const bool cut_short = stopping->str("pass_running") == "true";
    std::optional<long long> dirs_read;
    if (cut_short) {
        auto completed = d.find_events("pass.completed");
        ASSERT_FALSE(completed.empty()) << d.tail();
        const e2e::LogEvent& last = completed.back();
        EXPECT_EQ(last.str("cancelled"), "true") << last.dump();
        // The walk stops at the next directory; a root it walked only in part must not be
        // reported as walked (what it did not reach would look gone).
        dirs_read = e2e::int_of(last.fields, "dirs");
        ASSERT_TRUE(dirs_read) << last.dump();
        const long long all_dirs = 1 + k_tops + k_tops * k_per_top + // root, tops, workers
                                   static_cast<long long>(stale.size() + live.size()); // .runtime
        if (*dirs_read < all_dirs) {
            EXPECT_EQ(e2e::int_of(last.fields, "roots_unavailable"), 1) << last.dump();
        }
    }
    std::cerr << "SIGTERM landed with " << at_signal << " of " << stale.size()
              << " stale locks left (pass running: " << (cut_short ? "yes" : "no")
              << ", directories read: " << (dirs_read ? std::to_string(*dirs_read) : "-")
              << "); exit after " << exit_ms << " ms; " << logged << " removed in all, "
              << remaining() << " left for the next start\n";
}

TEST_F(Faults, ASecondSigtermDuringTheWindDownExitsAtOnce) {
    // A tmux query that hangs keeps the pass running for seconds after the first SIGTERM.
    const std::string hang = m_dir + "/hanging-tmux.sock";
    e2e::HangingListener listener(hang);
    Child owner = spawn_sleeper();
    const std::string live = put_live("w-live", owner, "some-session");
    DaemonProcess& d =
        start({"--root", m_root, "--tmux-socket-path", hang, "--log-format", "json", "--log-level",
               "debug", "--interval", "100ms", "--tmux-timeout", "30s"});
    ASSERT_TRUE(d.wait_for_event("daemon.started")) << d.tail();
    d.send_signal(SIGTERM);
    auto first = d.wait_for_event("daemon.stopping");
    ASSERT_TRUE(first) << d.tail();
    EXPECT_EQ(first->str("pass_running"), "true") << first->dump();
    EXPECT_TRUE(d.running()) << "the first SIGTERM waits for the pass to wind down";
    d.send_signal(SIGTERM);
    auto st = d.wait_exit(10s);
    ASSERT_TRUE(st) << "a second SIGTERM did not stop the daemon\n" << d.tail();
    EXPECT_TRUE(st->exited && st->code == 0) << st->describe();
    auto forced = d.find_events("daemon.stopping",
                                [](const LogEvent& e) { return e.str("forced") == "true"; });
    EXPECT_EQ(forced.size(), 1u) << d.tail();
    EXPECT_TRUE(exists(live));
}

} // namespace
} // namespace agentlock::faults
