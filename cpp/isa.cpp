// Picks, once, the copy of the kernels this CPU runs best (isa.h), or the one TAPEGRAD_ISA names.
#include "isa.h"

#include <cstdlib>
#include <stdexcept>

#ifndef TG_BASELINE_NAME
#if defined(__x86_64__)
#define TG_BASELINE_NAME "x86-64"
#else
#define TG_BASELINE_NAME "baseline"
#endif
#endif

namespace tg {

// The entry points of the copies CMakeLists.txt built (TG_HAVE_<level> for each TAPEGRAD_ISAS entry).
#ifdef TG_HAVE_X86_64_V4
namespace x86_64_v4 {
std::vector<OpDef> op_rows();
OptimUpdates optim_updates();
SmallProducts small_products();
}  // namespace x86_64_v4
#endif
#ifdef TG_HAVE_X86_64_V3
namespace x86_64_v3 {
std::vector<OpDef> op_rows();
OptimUpdates optim_updates();
SmallProducts small_products();
}  // namespace x86_64_v3
#endif
#ifdef TG_HAVE_X86_64_V2
namespace x86_64_v2 {
std::vector<OpDef> op_rows();
OptimUpdates optim_updates();
SmallProducts small_products();
}  // namespace x86_64_v2
#endif

namespace {

struct Copy {
    const char* isa;
    bool (*runs_here)();
    std::vector<OpDef> (*op_rows)();
    OptimUpdates (*optim_updates)();
    SmallProducts (*small_products)();
};

// __builtin_cpu_supports also checks that the OS saves the wider registers. GCC 12 knows the
// levels by name; older compilers check the features a level adds that compiled code uses most.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define TG_RUNS(level, features) (__builtin_cpu_supports(level) != 0)
#else
#define TG_RUNS(level, features) (features)
#endif
#define TG_HAS(f) (__builtin_cpu_supports(f) != 0)

// Best first.
const std::vector<Copy>& copies() {
    static const std::vector<Copy> all = {
#ifdef TG_HAVE_X86_64_V4
        {"x86-64-v4",
         [] { return TG_RUNS("x86-64-v4", TG_HAS("avx512f") && TG_HAS("avx512bw") && TG_HAS("avx512dq") && TG_HAS("avx512vl")); },
         x86_64_v4::op_rows, x86_64_v4::optim_updates, x86_64_v4::small_products},
#endif
#ifdef TG_HAVE_X86_64_V3
        {"x86-64-v3",
         [] { return TG_RUNS("x86-64-v3", TG_HAS("avx2") && TG_HAS("fma") && TG_HAS("bmi") && TG_HAS("bmi2")); },
         x86_64_v3::op_rows, x86_64_v3::optim_updates, x86_64_v3::small_products},
#endif
#ifdef TG_HAVE_X86_64_V2
        {"x86-64-v2", [] { return TG_RUNS("x86-64-v2", TG_HAS("sse4.2") && TG_HAS("popcnt")); }, x86_64_v2::op_rows,
         x86_64_v2::optim_updates, x86_64_v2::small_products},
#endif
        {TG_BASELINE_NAME, [] { return true; }, baseline::op_rows, baseline::optim_updates, baseline::small_products},
    };
    return all;
}

const Copy& pick() {
    const char* wanted = std::getenv("TAPEGRAD_ISA");
    std::string names;
    for (const Copy& c : copies()) {
        if (!wanted || !*wanted) {
            if (c.runs_here()) return c;
            continue;
        }
        if (wanted == std::string(c.isa)) {
            if (!c.runs_here())
                throw std::invalid_argument(std::string("TAPEGRAD_ISA=") + wanted + ": this CPU lacks that instruction set");
            return c;
        }
        names += std::string(names.empty() ? "" : ", ") + c.isa;
    }
    throw std::invalid_argument(std::string("TAPEGRAD_ISA=") + wanted + ": not one of the kernel copies built (" +
                                names + ")");
}

// What the chosen copy provides, all made at once: the module's import asks for the op table, so
// nothing here is first made later, by one thread while another forks (a child would then wait
// for good on the half-made static).
struct Chosen {
    const Copy& copy;
    std::vector<OpDef> table;
    OptimUpdates updates;
    SmallProducts products;
};

const Chosen& chosen() {
    static const Chosen c = [] {
        const Copy& copy = pick();
        return Chosen{copy, copy.op_rows(), copy.optim_updates(), copy.small_products()};
    }();
    return c;
}

}  // namespace

const std::vector<OpDef>& op_table() { return chosen().table; }
const SmallProducts& small_products() { return chosen().products; }
const OptimUpdates& optim_updates() { return chosen().updates; }

std::string kernel_isa() { return chosen().copy.isa; }

std::vector<std::string> kernel_isas() {
    std::vector<std::string> names;
    for (const Copy& c : copies()) names.emplace_back(c.isa);
    return names;
}

}  // namespace tg
