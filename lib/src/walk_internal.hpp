#pragma once
// The pieces of the tree walk shared by the serial walk (tree_walk.cpp) and the parallel walk
// (parallel_walk.cpp). Internal to the library; not installed.

#include <agentlock/fd.hpp>
#include <agentlock/result.hpp>
#include <agentlock/tree_walk.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace agentlock::walk_detail {

/// Open fds a serial walker keeps on its stack, besides its bottom frame's.
inline constexpr std::size_t k_held_fds = 32;
/// WalkStats::errors holds at most this many; the counts are not capped.
inline constexpr std::size_t k_max_errors = 100;

/// One directory on a walker's stack: read already, with the subdirectories it still has to
/// visit (taken from the back).
struct Frame {
    std::string name; ///< the name it was entered by; the root's path for the root
    std::string path; ///< for messages and worker paths only
    unsigned depth = 0;
    dev_t dev = 0;
    ino_t ino = 0;
    std::uint64_t mount = 0; ///< statx STATX_MNT_ID; 0 when the kernel does not say
    Fd fd;                   ///< invalid while evicted
    bool is_runtime = false;
    std::vector<std::string> subdirs; ///< still to visit, taken from the back
};

/// Where a walker hands part of its pending work to idle walkers (the parallel walk).
class WorkSink {
public:
    virtual ~WorkSink() = default;
    /// True when some walker waits for work; called once per directory, so it must be cheap.
    virtual bool wants_work() const = 0;
    /// Takes a frame with its own fd and the subdirectories the giver will no longer visit, or
    /// returns false and leaves `frame` alone when no walker waits for it any more.
    virtual bool give(Frame& frame) = 0;
    /// True once the walk is abandoned (a visitor threw): walkers drop what they hold.
    virtual bool stopped() const = 0;
};

/// Depth-first walker over directory fds, as described at the top of tree_walk.cpp. Without a
/// sink it is the whole serial walk; with one, several walkers share a tree.
class Walker {
public:
    /// `held_fds`: fds kept open on the stack besides the bottom frame's.
    Walker(const WalkOptions& options, const LockVisitor& visit, std::size_t held_fds = k_held_fds,
           WorkSink* sink = nullptr);
    Walker(const Walker&) = delete;
    Walker& operator=(const Walker&) = delete;

    /// Opens and reads `root` as the bottom of the stack; fails only when the root cannot be
    /// opened as a directory.
    Status start(const std::string& root);
    /// Makes a frame given by another walker the bottom of the (empty) stack.
    void adopt(Frame frame, dev_t root_dev);
    /// Visits everything below the frames on the stack, until the stack is empty.
    void walk();

    /// st_dev of the root, once start() succeeded.
    dev_t root_dev() const { return m_root_dev; }
    /// What this walker read so far, over all start()/adopt() calls.
    WalkStats& stats() { return m_stats; }

private:
    void enter(const std::string& name);
    bool read_top();
    bool is_candidate_dir(const Frame& frame, std::string_view name, unsigned char type) const;
    bool may_enter(const Frame& frame, std::string_view name) const;
    /// Whether the entry `.runtime` of `frame`, listed with d_type `type`, is a symlink.
    bool is_symlink(const Frame& frame, unsigned char type) const;
    bool ensure_open(std::size_t index);
    void trim();
    void pop();
    void share();
    void unreadable(std::string message, const std::string& path);
    void symlinked_runtime(const Frame& frame);

    const WalkOptions& m_options;
    const LockVisitor& m_visit;
    std::size_t m_held_max;
    WorkSink* m_sink;
    std::unique_ptr<char[]> m_buffer;
    std::vector<Frame> m_stack;
    std::size_t m_held = 0; // open fds on the stack, the bottom frame's excluded
    dev_t m_root_dev = 0;
    WalkStats m_stats;
};

/// Appends `from` to `into`: counts added, errors kept up to k_max_errors.
void merge_stats(WalkStats& into, WalkStats&& from);

/// The parallel walk: `threads` (at least 2) walkers sharing one tree; same results as the
/// serial walk. The visitor is called from several threads, one call at a time.
Result<WalkStats> walk_locks_parallel(const std::string& root, const WalkOptions& options,
                                      const LockVisitor& visit, unsigned threads);

} // namespace agentlock::walk_detail
