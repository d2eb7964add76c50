#include <agentlock/lock_file.hpp>
#include <agentlock/scope.hpp>

#include <algorithm>
#include <fcntl.h>
#include <sys/stat.h>

namespace agentlock {

bool path_is_under(std::string_view path, std::string_view root) {
    while (root.size() > 1 && root.back() == '/') {
        root.remove_suffix(1);
    }
    if (path.substr(0, root.size()) != root) {
        return false;
    }
    if (path.size() == root.size() || root == "/") {
        return true;
    }
    return path[root.size()] == '/';
}

const std::string* root_containing(const std::vector<std::string>& roots, std::string_view path) {
    const std::string* best = nullptr;
    for (const auto& root : roots) {
        if (path_is_under(path, root) && (best == nullptr || root.size() > best->size())) {
            best = &root;
        }
    }
    return best;
}

std::optional<unsigned> depth_below(std::string_view root, std::string_view path) {
    if (!path_is_under(path, root)) {
        return std::nullopt;
    }
    unsigned depth = 0;
    bool in_name = false;
    for (std::size_t i = root.size(); i < path.size(); ++i) {
        if (path[i] == '/') {
            in_name = false;
        } else if (!in_name) {
            in_name = true;
            ++depth;
        }
    }
    return depth;
}

std::optional<std::vector<std::string>> names_below(std::string_view root, std::string_view path) {
    std::vector<std::string> names;
    std::string_view rest = path;
    rest.remove_prefix(std::min(root.size(), rest.size()));
    while (!rest.empty() && rest.front() == '/') {
        rest.remove_prefix(1);
    }
    while (!rest.empty()) {
        const auto slash = rest.find('/');
        const std::string_view name = rest.substr(0, slash);
        if (name.empty() || name == "." || name == "..") {
            return std::nullopt;
        }
        names.emplace_back(name);
        rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
    }
    return names;
}

bool is_pruned(const WalkOptions& scope, std::string_view name) {
    return std::find(scope.prune.begin(), scope.prune.end(), name) != scope.prune.end();
}

bool may_enter(const WalkOptions& scope, unsigned parent_depth, std::string_view name) {
    if (is_pruned(scope, name)) {
        return false;
    }
    if (!scope.max_depth) {
        return true;
    }
    const unsigned max = *scope.max_depth;
    return parent_depth + 1 <= max || (name == k_runtime_dir && parent_depth <= max);
}

std::uint64_t mount_id_of(int dir_fd) {
    struct statx stx {};
    if (::statx(dir_fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_MNT_ID, &stx) != 0 ||
        (stx.stx_mask & STATX_MNT_ID) == 0) {
        return 0;
    }
    return stx.stx_mnt_id;
}

} // namespace agentlock
