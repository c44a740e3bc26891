"""Prove CUDA kernels on a machine without a GPU.

Two checks, each catching what the other cannot:

``nvrtc_compile(code, arch)`` compiles a kernel file with NVRTC, the compiler CuPy uses, for a
given GPU architecture. NVRTC needs no device; it comes from the ``nvidia-cuda-nvrtc-cu12`` wheel.
This proves the source is valid CUDA as CuPy will see it (nvcc accepts things NVRTC rejects,
``INFINITY`` for one).

``EmulatedModule(code)`` builds the same source with the host C++ compiler on top of
``cuda_emulation.h`` and runs its kernels on NumPy arrays, with CuPy's call shape
``module.get_function(name)(grid, block, args)``. Every thread of the grid runs, one after
another, so results can be compared with a reference; arguments are checked as strictly as the
GPU would punish mistakes (dtypes, 32- vs 64-bit scalars), and guard bytes around each array
catch writes out of bounds or through ``const`` pointers. Threads never run concurrently, so
races are invisible here: review scatter kernels by hand.
"""
import ctypes
import hashlib
import importlib.metadata
import json
import os
import re
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

NVRTC_WHEEL = "nvidia-cuda-nvrtc-cu12"
# What cupy.RawModule passes to NVRTC besides the target architecture.
CUPY_NVRTC_OPTIONS = ("--device-as-default-execution-space",)
EMULATION_HEADER = Path(__file__).with_name("cuda_emulation.h")
CXX = os.environ.get("CXX", "g++")
CXX_FLAGS = ("-O1", "-shared", "-fPIC", "-std=c++17")

# Bytes on each side of every array argument. A kernel writing further away than this corrupts
# memory the checks cannot see, so it is generous.
GUARD_BYTES = 4096
# A quiet-NaN bit pattern (float32 0x7fc0dead; float64 reads it as NaN too), so a kernel that reads
# out of bounds gets NaN into its float results instead of plausible numbers.
GUARD_PATTERN = bytes([0xAD, 0xDE, 0xC0, 0x7F])
# Device allocations are at least 256-byte aligned; emulated ones are too, so vector loads behave.
ALIGNMENT = 256

# The launch limits of every GPU CUDA 12 supports.
MAX_THREADS_PER_BLOCK = 1024
MAX_BLOCK_DIM = (1024, 1024, 64)
MAX_GRID_DIM = (2**31 - 1, 65535, 65535)


class CudaCompileError(RuntimeError):
    """A CUDA source failed to compile; the message holds the compiler's log (file and line)."""

    def __init__(self, message, log):
        super().__init__(message)
        self.log = log


class NvrtcNotFoundError(RuntimeError):
    """NVRTC is not installed (neither the pip wheel nor a system CUDA toolkit)."""


class KernelMemoryError(RuntimeError):
    """An emulated kernel wrote outside an array argument or through a ``const`` pointer."""


# ---------------------------------------------------------------------------------------------
# NVRTC
# ---------------------------------------------------------------------------------------------

def _nvrtc_library_path():
    """Path of libnvrtc.so.12 from the pip wheel, or the bare soname for the loader to resolve."""
    try:
        wheel = importlib.metadata.distribution(NVRTC_WHEEL)
    except importlib.metadata.PackageNotFoundError:
        return "libnvrtc.so.12"
    return str(wheel.locate_file("nvidia/cuda_nvrtc/lib/libnvrtc.so.12"))


@cache
def _nvrtc():
    """The NVRTC library loaded through ctypes, with the signatures of the calls used here."""
    path = _nvrtc_library_path()
    if os.path.isabs(path) and not os.path.exists(path):
        raise NvrtcNotFoundError(f"{NVRTC_WHEEL} is installed but {path} is missing; reinstall it")
    try:
        lib = ctypes.CDLL(path)
    except OSError as error:
        if os.path.isabs(path):
            raise  # the wheel's library exists but does not load: a real failure, not a skip
        raise NvrtcNotFoundError(
            f"NVRTC (libnvrtc.so.12) not found: pip install {NVRTC_WHEEL}") from error
    program_p = ctypes.POINTER(ctypes.c_void_p)
    size_p = ctypes.POINTER(ctypes.c_size_t)
    int_p = ctypes.POINTER(ctypes.c_int)
    signatures = {
        "nvrtcVersion": [int_p, int_p],
        "nvrtcGetErrorString": [ctypes.c_int],
        "nvrtcCreateProgram": [program_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int,
                               ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p)],
        "nvrtcDestroyProgram": [program_p],
        "nvrtcCompileProgram": [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)],
        "nvrtcGetProgramLogSize": [ctypes.c_void_p, size_p],
        "nvrtcGetProgramLog": [ctypes.c_void_p, ctypes.c_char_p],
        "nvrtcGetPTXSize": [ctypes.c_void_p, size_p],
        "nvrtcGetPTX": [ctypes.c_void_p, ctypes.c_char_p],
        "nvrtcGetCUBINSize": [ctypes.c_void_p, size_p],
        "nvrtcGetCUBIN": [ctypes.c_void_p, ctypes.c_char_p],
    }
    for name, argtypes in signatures.items():
        function = getattr(lib, name)
        function.argtypes = argtypes
        function.restype = ctypes.c_int
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    return lib


def _check_nvrtc(result, call):
    if result != 0:
        reason = _nvrtc().nvrtcGetErrorString(result).decode()
        raise RuntimeError(f"{call} failed: {reason}")


def nvrtc_version():
    """NVRTC's (major, minor) version; raises NvrtcNotFoundError when NVRTC is not installed."""
    major, minor = ctypes.c_int(), ctypes.c_int()
    _check_nvrtc(_nvrtc().nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
    return major.value, minor.value


def nvrtc_compile(code, arch, name="kernel.cu", options=()):
    """Compile CUDA C++ source with NVRTC, as CuPy's RawModule would, and return the binary.

    ``arch`` is a virtual architecture such as ``"compute_80"`` (returns PTX, bytes) or a real
    one such as ``"sm_90"`` (returns a CUBIN, bytes). ``name`` is the file name NVRTC reports in
    its messages; ``options`` are extra NVRTC options, e.g. ``("--include-path=DIR",)``, passed
    after CuPy's own (CUPY_NVRTC_OPTIONS and ``--gpu-architecture=ARCH``).
    Raises CudaCompileError, whose message holds NVRTC's log with file and line numbers, when
    the source does not compile, and NvrtcNotFoundError when NVRTC is not installed.
    """
    nvrtc = _nvrtc()
    all_options = [option.encode() for option in
                   (*CUPY_NVRTC_OPTIONS, f"--gpu-architecture={arch}", *options)]
    program = ctypes.c_void_p()
    _check_nvrtc(nvrtc.nvrtcCreateProgram(ctypes.byref(program), code.encode(), name.encode(),
                                          0, None, None), "nvrtcCreateProgram")
    try:
        result = nvrtc.nvrtcCompileProgram(
            program, len(all_options), (ctypes.c_char_p * len(all_options))(*all_options))
        if result != 0:
            log = _nvrtc_log(program)
            reason = nvrtc.nvrtcGetErrorString(result).decode()
            raise CudaCompileError(f"NVRTC could not compile {name} for {arch} ({reason}):\n{log}", log)
        if arch.startswith("sm_"):
            get_size, get_binary = nvrtc.nvrtcGetCUBINSize, nvrtc.nvrtcGetCUBIN
        else:
            get_size, get_binary = nvrtc.nvrtcGetPTXSize, nvrtc.nvrtcGetPTX
        size = ctypes.c_size_t()
        _check_nvrtc(get_size(program, ctypes.byref(size)), get_size.__name__)
        binary = ctypes.create_string_buffer(size.value)
        _check_nvrtc(get_binary(program, binary), get_binary.__name__)
        # PTX is text whose size counts a terminating NUL; a CUBIN is binary and may hold NULs.
        return binary.raw if arch.startswith("sm_") else binary.value
    finally:
        nvrtc.nvrtcDestroyProgram(ctypes.byref(program))


def _nvrtc_log(program):
    size = ctypes.c_size_t()
    _check_nvrtc(_nvrtc().nvrtcGetProgramLogSize(program, ctypes.byref(size)), "nvrtcGetProgramLogSize")
    log = ctypes.create_string_buffer(size.value)
    _check_nvrtc(_nvrtc().nvrtcGetProgramLog(program, log), "nvrtcGetProgramLog")
    return log.value.decode(errors="replace")


# ---------------------------------------------------------------------------------------------
# CPU emulation
# ---------------------------------------------------------------------------------------------

# C types a kernel parameter may have, spelled canonically, with the NumPy dtype they match.
C_TYPES = {
    "bool": np.bool_,
    "char": np.int8,
    "signed char": np.int8,
    "unsigned char": np.uint8,
    "short": np.int16,
    "unsigned short": np.uint16,
    "int": np.int32,
    "unsigned int": np.uint32,
    "long": np.int64,
    "unsigned long": np.uint64,
    "long long": np.int64,
    "unsigned long long": np.uint64,
    "size_t": np.uint64,
    "ptrdiff_t": np.int64,
    "float": np.float32,
    "double": np.float64,
}
# Other spellings of the same types.
C_TYPE_ALIASES = {
    "signed": "int", "signed int": "int", "unsigned": "unsigned int",
    "short int": "short", "signed short": "short", "unsigned short int": "unsigned short",
    "long int": "long", "signed long": "long", "unsigned long int": "unsigned long",
    "long long int": "long long", "signed long long": "long long",
    "unsigned long long int": "unsigned long long",
}
C_TYPE_WORDS = {"bool", "char", "short", "int", "long", "signed", "unsigned", "float", "double",
                "size_t", "ptrdiff_t"}

KERNEL_SIGNATURE = re.compile(
    r'extern\s*"C"\s+__global__\s+void\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?(\w+)\s*\(([^)]*)\)')


@dataclass(frozen=True)
class KernelParam:
    """One kernel parameter: ``base_type`` is a key of C_TYPES (e.g. "unsigned int"), the
    pointee's type for a pointer; ``const`` says whether a pointer's pointee is const."""
    name: str
    base_type: str
    pointer: bool
    const: bool

    @property
    def dtype(self):
        return np.dtype(C_TYPES[self.base_type])

    @property
    def c_type(self):
        if self.pointer:
            return f"{'const ' if self.const else ''}{self.base_type}*"
        return self.base_type

    def declaration(self):
        return f"{self.c_type} {self.name}"


def _parse_param(kernel, position, text):
    tokens = re.findall(r"\w+|\*|&|\[", text)
    if "&" in tokens or "[" in tokens or tokens.count("*") > 1:
        raise _unsupported_param(kernel, text)
    pointer = "*" in tokens
    star = tokens.index("*") if pointer else len(tokens)
    const = pointer and "const" in tokens[:star]
    words = [t for t in tokens if t not in ("const", "volatile", "__restrict__", "*")]
    name = f"arg{position}"
    if words and words[-1] not in C_TYPE_WORDS:
        name = words.pop()
    base_type = " ".join(words)
    base_type = C_TYPE_ALIASES.get(base_type, base_type)
    if base_type not in C_TYPES:
        raise _unsupported_param(kernel, text)
    return KernelParam(name, base_type, pointer, const)


def _unsupported_param(kernel, text):
    return CudaCompileError(
        f"kernel {kernel}: parameter '{text.strip()}' is not supported by the CPU emulator; "
        f"parameters must be scalars or plain pointers of: {', '.join(C_TYPES)}", text)


def parse_kernels(preprocessed):
    """Find the ``extern "C" __global__ void NAME(params)`` kernels in preprocessed source.

    Returns {name: [KernelParam, ...]}. Raises CudaCompileError for a ``__global__`` function
    spelled any other way (templates, ``extern "C" { }`` blocks) or with a parameter type the
    emulator cannot pass, so no kernel silently goes missing.
    """
    kernels = {}
    for match in KERNEL_SIGNATURE.finditer(preprocessed):
        name, params_text = match.group(1), match.group(2).strip()
        params = [] if params_text in ("", "void") else [
            _parse_param(name, i, p) for i, p in enumerate(params_text.split(","))]
        kernels[name] = params  # a forward declaration and the definition agree
    spelled = len(re.findall(r"\b__global__\b", preprocessed))
    found = len(KERNEL_SIGNATURE.findall(preprocessed))
    if spelled != found:
        raise CudaCompileError(
            'the CPU emulator runs kernels declared as  extern "C" __global__ void NAME(params)  '
            f"and found {spelled - found} __global__ function(s) declared otherwise", preprocessed)
    return kernels


def _launcher_source(kernels):
    """C++ for one launcher per kernel: it unpacks CUDA-style ``void** args`` (each entry points
    at the argument's value) and runs the kernel once per thread of the grid."""
    parts = []
    for name, params in kernels.items():
        unpack = "".join(f"    {p.c_type} a{i} = *static_cast<{p.c_type}*>(args[{i}]);\n"
                         for i, p in enumerate(params))
        call_args = ", ".join(f"a{i}" for i in range(len(params)))
        parts.append(
            f'extern "C" void tinyconv_launch_{name}(const unsigned int* launch, void** args) {{\n'
            f"{unpack}"
            f"    tinyconv_run_grid(launch, [&] {{ {name}({call_args}); }});\n"
            f"}}\n")
    return "".join(parts)


def cache_dir():
    """Where built emulation libraries are kept: $TINYCONV_CACHE, else ~/.cache/tinyconv
    (or the temp directory when home is not writable), in a cuda_emulation subdirectory."""
    root = os.environ.get("TINYCONV_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tinyconv")
    path = Path(root) / "cuda_emulation"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        path = Path(tempfile.gettempdir()) / f"tinyconv-{os.getuid()}" / "cuda_emulation"
        path.mkdir(parents=True, exist_ok=True)
    return path


@cache
def _compiler_identity():
    return subprocess.run([CXX, "--version"], capture_output=True, text=True, check=True).stdout


def _source_key(code, name, include_dirs):
    """Hash of everything the built library depends on: source, the headers it may include,
    the emulation header, this file (it writes the launchers), the compiler and its flags."""
    digest = hashlib.sha256()
    for part in (code, name, EMULATION_HEADER.read_text(), Path(__file__).read_text(),
                 _compiler_identity(), " ".join(CXX_FLAGS)):
        digest.update(part.encode())
        digest.update(b"\0")
    for directory in include_dirs:
        for header in sorted(Path(directory).glob("*.*h")):
            digest.update(str(header).encode() + b"\0" + header.read_bytes() + b"\0")
    return digest.hexdigest()[:32]


def _run_compiler(args, stdin, name):
    # The C locale keeps messages in plain ASCII, the same on every machine.
    result = subprocess.run([CXX, *args], input=stdin, capture_output=True, text=True,
                            env={**os.environ, "LC_ALL": "C"})
    if result.returncode != 0:
        raise CudaCompileError(f"{CXX} could not build {name} for CPU emulation:\n{result.stderr}",
                               result.stderr)
    return result.stdout


def _build(code, name, include_dirs, library):
    """Compile ``code`` plus its launchers into ``library``; return its kernels' signatures."""
    includes = [f"-I{d}" for d in include_dirs]
    preprocessed = _run_compiler(["-E", "-P", "-std=c++17", "-x", "c++", *includes, "-"], code, name)
    kernels = parse_kernels(preprocessed)
    # #line makes the compiler's messages name the kernel file and its own line numbers.
    source = f'#line 1 "{name}"\n{code}\n#line 1 "<tinyconv launchers>"\n{_launcher_source(kernels)}'
    partial = Path(f"{library}.{os.getpid()}.tmp")
    _run_compiler([*CXX_FLAGS, "-include", str(EMULATION_HEADER), *includes,
                   "-x", "c++", "-", "-o", str(partial)], source, name)
    os.replace(partial, library)  # atomic, so parallel test runs never load a half-written file
    return kernels


# The index variables (threadIdx, ...) are globals of a kernel library, and every EmulatedModule
# of the same source shares one loaded library (dlopen returns it again), so launches from any
# module or thread go one at a time; builds into the shared cache do too.
_EMULATOR_LOCK = threading.Lock()


class EmulatedModule:
    """A CUDA kernel file built for the CPU; a stand-in for ``cupy.RawModule(code=code)``.

    The source is compiled with the host C++ compiler (``$CXX``, default g++) after
    ``cuda_emulation.h``, together with one launcher per ``extern "C" __global__`` kernel, into
    a shared library cached by content hash (see ``cache_dir()``), so building the same source
    again costs nothing. ``name`` is the file name compiler messages report; ``include_dirs``
    are searched by the source's ``#include "..."``. Raises CudaCompileError with the compiler's
    output when the source does not build.
    """

    def __init__(self, code, *, name="kernel.cu", include_dirs=()):
        include_dirs = [str(Path(d).resolve()) for d in include_dirs]
        key = _source_key(code, name, include_dirs)
        library = cache_dir() / f"{key}.so"
        signatures = library.with_suffix(".json")
        with _EMULATOR_LOCK:
            if library.exists() and signatures.exists():
                kernels = _load_signatures(signatures)
            else:
                kernels = _build(code, name, include_dirs, library)
                _save_signatures(signatures, kernels)
        self.name = name
        self._library = ctypes.CDLL(str(library))
        self._kernels = kernels

    @property
    def kernel_names(self):
        """Names of the kernels in the module, in source order."""
        return list(self._kernels)

    def get_function(self, name):
        """The kernel ``name``, callable as ``kernel(grid, block, args)`` like a CuPy RawKernel."""
        if name not in self._kernels:
            raise AttributeError(f"{self.name} has no kernel {name!r}; it has {self.kernel_names}")
        launcher = getattr(self._library, f"tinyconv_launch_{name}")
        launcher.argtypes = [ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_void_p)]
        launcher.restype = None
        return EmulatedKernel(name, self._kernels[name], launcher)


def _save_signatures(path, kernels):
    partial = Path(f"{path}.{os.getpid()}.tmp")
    partial.write_text(json.dumps({k: [vars(p) for p in params] for k, params in kernels.items()}))
    os.replace(partial, path)


def _load_signatures(path):
    return {k: [KernelParam(**p) for p in params] for k, params in json.loads(path.read_text()).items()}


def _launch_dims(kernel, what, value, limits):
    dims = (value,) if not isinstance(value, (tuple, list)) else tuple(value)
    if not 1 <= len(dims) <= 3 or not all(isinstance(d, (int, np.integer)) for d in dims):
        raise TypeError(f"kernel {kernel}: {what} must be an int or a tuple of 1 to 3 ints, got {value!r}")
    dims = tuple(int(d) for d in dims) + (1,) * (3 - len(dims))
    if any(not 1 <= d <= limit for d, limit in zip(dims, limits)):
        raise ValueError(f"kernel {kernel}: {what} {dims} outside the device limits {limits} "
                         "(a zero-sized launch is an error on the GPU too)")
    return dims


class _GuardedCopy:
    """A copy of one array argument inside a larger buffer whose margins hold GUARD_PATTERN."""

    guard = np.resize(np.frombuffer(GUARD_PATTERN, np.uint8), GUARD_BYTES)

    def __init__(self, array):
        self.array = array
        self.params = []
        storage = np.empty(GUARD_BYTES + array.nbytes + GUARD_BYTES + ALIGNMENT, np.uint8)
        start = (-(storage.ctypes.data + GUARD_BYTES)) % ALIGNMENT  # aligns the data, not the guard
        self.before = storage[start:start + GUARD_BYTES]
        self.data = storage[start + GUARD_BYTES:start + GUARD_BYTES + array.nbytes]
        self.after = storage[start + GUARD_BYTES + array.nbytes:start + 2 * GUARD_BYTES + array.nbytes]
        self.before[:] = self.guard
        self.after[:] = self.guard
        self.data[:] = array.reshape(-1).view(np.uint8)
        self.storage = storage
        self.pointer = ctypes.c_void_p(self.data.ctypes.data)

    @property
    def const(self):
        """True when every parameter this array was passed as is a const pointer."""
        return all(param.const for param in self.params)

    def result(self):
        return self.data.view(self.array.dtype).reshape(self.array.shape)

    def check(self, kernel):
        """Raise KernelMemoryError if the kernel wrote into a guard or through a const pointer."""
        names = " / ".join(p.name for p in self.params)
        itemsize = self.array.dtype.itemsize
        before = np.flatnonzero(self.before != self.guard)
        after = np.flatnonzero(self.after != self.guard)
        if before.size or after.size:
            if before.size:
                element = -((GUARD_BYTES - before[0] + itemsize - 1) // itemsize)
            else:
                element = self.array.size + after[0] // itemsize
            raise KernelMemoryError(
                f"kernel {kernel} wrote out of bounds of parameter {names} "
                f"({self.array.size} elements of {self.array.dtype}): at element {element} "
                f"({before.size + after.size} guard bytes changed)")
        if self.const:
            changed = np.flatnonzero(self.data != self.array.reshape(-1).view(np.uint8))
            if changed.size:
                raise KernelMemoryError(
                    f"kernel {kernel} wrote through const pointer parameter {names}: "
                    f"element {changed[0] // itemsize} changed")


class EmulatedKernel:
    """One kernel of an EmulatedModule; call it as ``kernel(grid, block, args)``.

    ``grid`` and ``block`` are ints or tuples of 1 to 3 ints within the device limits. ``args``
    is a tuple with one entry per parameter, checked strictly:

    - a pointer parameter takes a C-contiguous NumPy array of exactly the matching dtype
      (float32 for ``float*``, int32 for ``int*``, ...), writeable unless the pointer is const;
    - a scalar parameter takes a NumPy scalar of exactly the matching type (``np.int32(n)`` for
      ``int``, ``np.int64`` for ``long long``, ``np.float32`` for ``float``, ...). Python ints
      and floats are refused: CuPy passes them as 64-bit values, which a kernel taking ``int``
      or ``float`` misreads.

    Each array is copied between guard bytes; after the launch, a changed guard or a changed
    const argument raises KernelMemoryError, otherwise the results are copied back into the
    non-const arrays. The same array passed twice is one buffer, as on the GPU.
    """

    def __init__(self, name, params, launcher):
        self.name = name
        self.params = params
        self._launcher = launcher

    def __repr__(self):
        return f"EmulatedKernel({self.name}({', '.join(p.declaration() for p in self.params)}))"

    def __call__(self, grid, block, args, *, shared_mem=0):
        grid = _launch_dims(self.name, "grid", grid, MAX_GRID_DIM)
        block = _launch_dims(self.name, "block", block, MAX_BLOCK_DIM)
        if block[0] * block[1] * block[2] > MAX_THREADS_PER_BLOCK:
            raise ValueError(f"kernel {self.name}: block {block} has more than "
                             f"{MAX_THREADS_PER_BLOCK} threads")
        if shared_mem:
            raise NotImplementedError(f"kernel {self.name}: dynamic shared memory is not emulated")
        if not isinstance(args, (tuple, list)):
            raise TypeError(f"kernel {self.name}: args must be a tuple, got {type(args).__name__}")
        if len(args) != len(self.params):
            raise TypeError(f"kernel {self.name} takes {len(self.params)} arguments "
                            f"({', '.join(p.declaration() for p in self.params)}), got {len(args)}")

        # As in CUDA's cuLaunchKernel, args[i] is the address of the i-th argument's value: of
        # the data pointer for an array, of the number itself for a scalar.
        copies = []
        scalars = []  # keeps the scalars' storage alive until the launch returns
        addresses = []
        for param, value in zip(self.params, args):
            if param.pointer:
                copy = self._guarded_copy(param, value, copies)
                copy.params.append(param)
                addresses.append(ctypes.addressof(copy.pointer))
            else:
                scalars.append(self._scalar(param, value))
                addresses.append(scalars[-1].ctypes.data)
        launch = (ctypes.c_uint * 6)(*grid, *block)
        with _EMULATOR_LOCK:
            self._launcher(launch, (ctypes.c_void_p * len(addresses))(*addresses))

        for copy in copies:
            copy.check(self.name)
        for copy in copies:
            if not copy.const:
                np.copyto(copy.array, copy.result())

    def _guarded_copy(self, param, value, copies):
        where = f"kernel {self.name}: parameter {param.declaration()}"
        if not isinstance(value, np.ndarray):
            raise TypeError(f"{where} takes a NumPy array of {param.dtype}, got {type(value).__name__}")
        if value.dtype != param.dtype:
            raise TypeError(f"{where} takes an array of {param.dtype}, got an array of {value.dtype}")
        if not value.flags.c_contiguous:
            raise TypeError(f"{where} takes a C-contiguous array, got strides {value.strides} "
                            "(use np.ascontiguousarray)")
        if not param.const and not value.flags.writeable:
            raise TypeError(f"{where} is written by the kernel, but the array is read-only")
        for copy in copies:
            same = (copy.array.ctypes.data == value.ctypes.data and copy.array.nbytes == value.nbytes
                    and copy.array.dtype == value.dtype)
            if same:
                return copy
            if np.may_share_memory(copy.array, value):
                raise TypeError(f"{where} overlaps the array passed as {copy.params[0].name} without "
                                "being the same array; the emulator cannot alias partial views")
        copy = _GuardedCopy(value)
        copies.append(copy)
        return copy

    def _scalar(self, param, value):
        where = f"kernel {self.name}: parameter {param.declaration()}"
        expected = param.dtype.type.__name__
        # np.float64 is a subclass of float, hence the np.generic test first.
        if isinstance(value, (bool, int, float)) and not isinstance(value, np.generic):
            raise TypeError(
                f"{where} got a Python {type(value).__name__}; pass np.{expected}(...). CuPy passes a "
                f"Python int as a 64-bit integer and a Python float as a 64-bit double, so a kernel "
                f"parameter of another width reads garbage")
        if not isinstance(value, np.generic) or value.dtype != param.dtype:
            given = f"np.{value.dtype.type.__name__}" if isinstance(value, np.generic) else type(value).__name__
            raise TypeError(f"{where} takes np.{expected}, got {given}")
        return np.array(value)
