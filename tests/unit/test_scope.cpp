// The walk's scope: which paths lie under which root, how deep, and what is never entered. The
// tree walk, check_worker and the daemon's watch plan all answer from these.

#include <agentlock/scope.hpp>
#include <agentlock/tree_walk.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace agentlock {
namespace {

TEST(Scope, PathIsUnderMatchesWholeNamesOnly) {
    EXPECT_TRUE(path_is_under("/a/b", "/a"));
    EXPECT_TRUE(path_is_under("/a/b", "/a/"));
    EXPECT_TRUE(path_is_under("/a", "/a"));
    EXPECT_TRUE(path_is_under("/a", "/"));
    EXPECT_TRUE(path_is_under("/a/b", "/"));
    EXPECT_FALSE(path_is_under("/ab", "/a"));
    EXPECT_FALSE(path_is_under("/", "/a"));
    EXPECT_FALSE(path_is_under("/b", "/a"));
}

TEST(Scope, TheMostSpecificRootContainsAPath) {
    const std::vector<std::string> roots = {"/r", "/r/sub"};
    ASSERT_NE(root_containing(roots, "/r/sub/w"), nullptr);
    EXPECT_EQ(*root_containing(roots, "/r/sub/w"), "/r/sub");
    EXPECT_EQ(*root_containing(roots, "/r/subx/w"), "/r");
    EXPECT_EQ(root_containing({"/r"}, "/s/w"), nullptr);
}

TEST(Scope, DepthBelowCountsNamesFromTheRoot) {
    EXPECT_EQ(depth_below("/r", "/r"), 0u);
    EXPECT_EQ(depth_below("/r", "/r/a/b"), 2u);
    EXPECT_EQ(depth_below("/r/", "/r/a//b/"), 2u);
    EXPECT_EQ(depth_below("/", "/a/b"), 2u);
    EXPECT_FALSE(depth_below("/r", "/rx/a"));
}

TEST(Scope, NamesBelowRefusesDotsAndEmptyNames) {
    EXPECT_EQ(names_below("/r", "/r/a/b"), (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(names_below("/r", "/r"), std::vector<std::string>{});
    EXPECT_FALSE(names_below("/r", "/r/a/../b"));
    EXPECT_FALSE(names_below("/r", "/r/./b"));
}

TEST(Scope, PrunedNamesAndTheDepthLimit) {
    WalkOptions scope;
    EXPECT_TRUE(is_pruned(scope, ".git"));
    EXPECT_TRUE(is_pruned(scope, "node_modules"));
    EXPECT_FALSE(is_pruned(scope, "w01"));
    EXPECT_FALSE(may_enter(scope, 0, ".git"));
    EXPECT_TRUE(may_enter(scope, 40, "w01")) << "no limit by default";

    scope.max_depth = 2;
    EXPECT_TRUE(may_enter(scope, 1, "w01")) << "depth 2 is read";
    EXPECT_FALSE(may_enter(scope, 2, "deeper")) << "depth 3 is not";
    EXPECT_TRUE(may_enter(scope, 2, ".runtime")) << "a worker at depth 2 has its lock read";
    EXPECT_FALSE(may_enter(scope, 3, ".runtime"));
}

TEST(Scope, AnotherDeviceOrAKnownOtherMountDiffers) {
    const MountPlace place{10, 7};
    EXPECT_FALSE(place.differs(10, 7));
    EXPECT_FALSE(place.differs(10, 0)) << "an unknown mount id leaves it to the device";
    EXPECT_TRUE(place.differs(11, 7));
    EXPECT_TRUE(place.differs(10, 8)) << "a bind mount of the same file system";
    EXPECT_FALSE((MountPlace{10, 0}.differs(10, 8)));
}

} // namespace
} // namespace agentlock
