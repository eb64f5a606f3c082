;; The content fingerprint's line finder (src/fingerprint.ts), WebAssembly with 128-bit SIMD: 16 bytes per step
;; where a JavaScript loop over lines costs a call per line. Compiled into src/line_scan.ts by `deno task wasm`
;; (tools/wasm.ts, npm:wabt); tests/fingerprint_test.ts checks that the two agree and that the finder gives the
;; same fingerprints as the plain JavaScript scan.
;;
;; memory: 17 pages (1088 KiB): the engine copies up to 1 MiB at a time to offset 0 and searches it there.
(module
  (memory (export "memory") 17)
  ;; The first i in [p, end - 1) with mem[i] = '\n' and mem[i + 1] one of '-' '\', or -1.
  (func (export "find") (param $p i32) (param $end i32) (result i32)
    (local $m v128)
    (block $tail
      (loop $simd
        (br_if $tail (i32.gt_u (i32.add (local.get $p) (i32.const 17)) (local.get $end)))
        (local.set $m
          (v128.and
            (i8x16.eq (v128.load (local.get $p)) (i8x16.splat (i32.const 10)))
            (v128.or
              (i8x16.eq (v128.load offset=1 (local.get $p)) (i8x16.splat (i32.const 45)))
              (i8x16.eq (v128.load offset=1 (local.get $p)) (i8x16.splat (i32.const 92))))))
        (if (v128.any_true (local.get $m))
          (then (return (i32.add (local.get $p) (i32.ctz (i8x16.bitmask (local.get $m)))))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $simd)))
    (block $none
      (loop $byte
        (br_if $none (i32.ge_u (i32.add (local.get $p) (i32.const 1)) (local.get $end)))
        (if (i32.and
              (i32.eq (i32.load8_u (local.get $p)) (i32.const 10))
              (i32.or
                (i32.eq (i32.load8_u offset=1 (local.get $p)) (i32.const 45))
                (i32.eq (i32.load8_u offset=1 (local.get $p)) (i32.const 92))))
          (then (return (local.get $p))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $byte)))
    (i32.const -1)))
