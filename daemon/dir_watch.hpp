#pragma once
// Lock-change events: inotify on the roots, the directories leading to each known lock, and
// new directories, read in the event loop through an Asio descriptor. An event only says "judge
// this worker again" or "search this new directory"; it never decides anything.
//
// Watches are added by path with IN_DONT_FOLLOW|IN_ONLYDIR, so a symlink is never watched in
// place of a directory; a directory on the way that is swapped for a symlink can at worst make
// us watch the wrong directory, which only costs spurious re-checks (every re-check reaches the
// lock from its root without following symlinks).

#include <agentlock/monitor.hpp>
#include <agentlock/path_ref.hpp>
#include <agentlock/result.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace agentlock::daemon {

/// A watched path as stored: a pooled base and, for a worker's .runtime, the "/.runtime"
/// suffix, so that a worker's path is stored once for all the daemon's tables (PathRef).
struct WatchPath {
    PathRef base;
    bool runtime_suffix = false;

    /// Splits `path`: "<worker>/.runtime" keeps the worker as its base.
    static WatchPath of(const std::string& path);
    std::string str() const;
};

/// Orders WatchPaths and plain paths alike, by their whole text.
struct WatchPathLess {
    using is_transparent = void;
    bool operator()(const WatchPath& a, const WatchPath& b) const;
    bool operator()(const WatchPath& a, std::string_view b) const;
    bool operator()(std::string_view a, const WatchPath& b) const;
};

/// One inotify record as read from the descriptor.
struct RawInotifyEvent {
    int wd = -1;
    std::uint32_t mask = 0;
    std::uint32_t cookie = 0;
    std::string name; ///< empty for events about the watched directory itself
};

/// Splits the bytes of one read(2) of an inotify descriptor into records; stops at a truncated
/// record.
std::vector<RawInotifyEvent> parse_inotify_buffer(const char* data, std::size_t size);

/// The outcome of adding one watch.
enum class AddWatch {
    added,     ///< a new watch
    present,   ///< already watched as that kind
    gone,      ///< the path is not (or no longer) a directory: nothing to watch
    exhausted, ///< the inotify watch limit (max_user_watches) is reached: ENOSPC
    failed,    ///< another error (permission, ...)
};

/// What an add() came to: its value (added, present, gone), or, for an error, exhausted when the
/// watch limit was reached (ENOSPC) and failed otherwise.
AddWatch outcome_of(const Result<AddWatch>& added);

/// An inotify instance and its watches. add, remove_under, the marking, count and kind_of are
/// thread-safe (the
/// worker thread adds watches as it finds directories); open, start and close belong to the
/// event loop thread.
class DirWatcher final : public DirWatchSet {
public:
    /// Receives, on the loop thread, each batch of events read; `overflow` when the kernel's
    /// queue overflowed and events were lost.
    using OnEvents = std::function<void(std::vector<WatchEvent> events, bool overflow)>;

    explicit DirWatcher(boost::asio::io_context& io);
    ~DirWatcher() override;
    DirWatcher(const DirWatcher&) = delete;
    DirWatcher& operator=(const DirWatcher&) = delete;

    /// inotify_init1(IN_NONBLOCK|IN_CLOEXEC); fails when inotify is unavailable.
    Status open();
    bool is_open() const { return m_fd != nullptr; }
    /// Starts reading events into `on_events` (once, after open).
    void start(OnEvents on_events);
    /// Removes every watch and closes the descriptor.
    void close();

    /// Watches `path` as `kind`: added, present or gone, or the error (see outcome_of).
    Result<AddWatch> add(const std::string& path, WatchKind kind);
    /// Stops watching `path` and every watched directory below it.
    void remove_under(const std::string& path) override;
    /// Starts a round of marking: from now on, add() marks each path it adds or finds watched.
    /// Returns the round, for drop_unmarked. (A set of the paths to keep would cost as much as
    /// the watches themselves at fleet scale.)
    std::uint64_t begin_marking();
    /// Stops watching every path that add() did not mark in `round`.
    void drop_unmarked(std::uint64_t round);
    /// Every watched path, sorted.
    std::vector<std::string> paths() const;
    /// Number of watches.
    std::size_t count() const;
    /// The kind `path` is watched as, if it is.
    std::optional<WatchKind> kind_of(const std::string& path) const override;

private:
    Result<AddWatch> add_locked(const std::string& path, WatchKind kind);
    void remove_locked(const std::string& path);
    void read_more();

    boost::asio::io_context& m_io;
    std::unique_ptr<boost::asio::posix::stream_descriptor> m_fd;
    int m_raw_fd = -1;
    OnEvents m_on_events;
    std::unique_ptr<char[]> m_buffer;
    std::size_t m_buffer_size;

    mutable std::mutex m_mutex; // guards the maps below
    struct Watch {
        int wd = -1;
        WatchKind kind = WatchKind::dir;
        std::uint64_t mark = 0; ///< the last marking round that added or met it
    };
    using ByPath = std::map<WatchPath, Watch, WatchPathLess>;
    ByPath m_by_path;                                  // each path stored once
    std::unordered_map<int, ByPath::iterator> m_by_wd; // into m_by_path
    std::uint64_t m_mark = 0;
};

/// `parent` + "/" + `name` (no doubled slash after "/").
std::string join_path(const std::string& parent, const std::string& name);

/// The directory part of `path` ("/a/b" -> "/a", "/a" -> "/").
std::string parent_path(const std::string& path);

} // namespace agentlock::daemon
