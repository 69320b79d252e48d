"""Link one instruction set's copy of the kernels into one object whose code is its own.

Used by CMakeLists.txt at build time:

    isa_objects.py --linker LD --objcopy OBJCOPY --nm NM --readelf READELF --namespace x86_64_v3 \
        --output OUT.o OBJ.o...

Every copy of the kernels defines the same functions (tg::fwd_add ...) and the same inline and
template code (Eigen's, the Tensor class's), compiled for another instruction set. Linked side by
side, the linker would keep one definition of each name, so baseline code could end up running
AVX2 code. So the copy's objects are linked into one relocatable object first, and every name it
defines gets the suffix .<namespace>, except its entry points (namespace tg::<namespace>) and type
information (exceptions are matched by it). A copy must then hold no state of its own (each would
have a separate instance): the check below fails on writable static data.
"""

import argparse
import os
import subprocess
import sys


def run(*command):
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def writable_data(readelf, path):
    """Sizes of the sections of static storage (.data, .bss and thread-local ones) in an object; not
    those written once at load time (relocated constants, the exception personality's pointer)."""
    found = {}
    for line in run(readelf, "-S", "-W", path).splitlines():
        fields = line.replace("[ ", "[").split()
        if len(fields) > 6 and fields[1].startswith((".data", ".bss", ".tdata", ".tbss")) \
                and not fields[1].startswith((".data.rel.ro", ".data.rel.local.DW.ref.")) and int(fields[5], 16) > 0:
            found[fields[1]] = int(fields[5], 16)
    return found


def renames(nm, readelf, path, namespace):
    """Lines "old new" for objcopy --redefine-syms: every global or weak name the object defines,
    and the names of its COMDAT groups (the linker keeps one group of each name; constructors'
    and destructors' groups are named by a local symbol)."""
    entry = f"_ZN2tg{len(namespace)}{namespace}"  # mangled names in namespace tg::<namespace>
    names = set()
    for line in run(nm, "--defined-only", "-P", path).splitlines():
        name, kind = line.split()[:2]
        if kind.isupper() or kind in "uvw":  # global, weak or unique; lower case is local
            names.add(name)
    for line in run(readelf, "-g", "-W", path).splitlines():
        if line.startswith("COMDAT group section"):
            names.add(line[line.index("[", line.index("]")) + 1:line.rindex("] contains")])
    return [f"{n} {n}.{namespace}\n" for n in sorted(names) if not n.startswith((entry, "_ZTI", "_ZTS"))]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for tool in ("linker", "objcopy", "nm", "readelf"):
        p.add_argument(f"--{tool}", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--sanitized", action="store_true", help="the sanitizers add static data of their own: no check")
    p.add_argument("objects", nargs="+")
    args = p.parse_args()
    run(args.linker, "-r", "-o", args.output, *args.objects)
    state = {} if args.sanitized else writable_data(args.readelf, args.output)
    if state:
        sys.exit(f"{args.output}: the kernels hold state ({state}), which each instruction-set copy would "
                 "have separately; keep it in a file outside TAPEGRAD_KERNELS")
    table = args.output + ".renames"
    with open(table, "w") as f:
        f.writelines(renames(args.nm, args.readelf, args.output, args.namespace))
    run(args.objcopy, f"--redefine-syms={table}", args.output)
    os.remove(table)


if __name__ == "__main__":
    main()
