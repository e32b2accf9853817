;; SBIF's float32 element-wise kernels in WebAssembly SIMD: spec/ops.md's tanh, sigmoid and relu, four lanes at a time.
;;
;; Assembled by runtimes/js/scripts/gen-wasm.mjs (the subset product.wat describes). Each function maps `count`
;; float32s (a multiple of 4) in place, from byte `at` of the imported memory on. Every step is one float32 operation,
;; rounded, in Eigen's order (multiply, then add: the TF 1.15.5 pip build has no FMA), so src/wasm/elementwise.js's
;; JavaScript fallback, the same operations each rounded with Math.fround, gives the same bits. The clamps are
;; f32x4.pmin(v, bound) = bound < v ? bound : v and pmax(v, bound) = v < bound ? bound : v (single instructions on x86,
;; where min and max take several): with the value first, a NaN value compares false and is kept, as Math.min and
;; Math.max keep it in the fallback.
(module
  (import "env" "memory" (memory 1))
  ;; tanh: Eigen's generic_fast_tanh_float, which TF 1.15 runs on both of its paths: x clamped to [-9, 9],
  ;; p = x * (a1 + x2 * (a3 + ... + x2 * a13)), q = b0 + x2 * (b2 + x2 * (b4 + x2 * b6)), y = p / q. TF's values
  ;; bit for bit, but for |x| below 2.4e-36, where TF flushes x * a1 to 0 and this kernel keeps about x.
  (func $tanh (export "tanh") (param $at i32) (param $count i32)
    (local $end i32) (local $x v128) (local $x2 v128) (local $low v128) (local $high v128) (local $a1 v128)
    (local $a3 v128) (local $a5 v128) (local $a7 v128) (local $a9 v128) (local $a11 v128) (local $a13 v128)
    (local $b0 v128) (local $b2 v128) (local $b4 v128) (local $b6 v128)
    local.get $at
    local.get $count
    i32.const 2
    i32.shl
    i32.add
    local.set $end
    ;; the constants, once: in locals, not rebuilt on every iteration
    v128.const f32x4 -9 -9 -9 -9
    local.set $low
    v128.const f32x4 9 9 9 9
    local.set $high
    v128.const f32x4 4.89352455891786e-03 4.89352455891786e-03 4.89352455891786e-03 4.89352455891786e-03
    local.set $a1
    v128.const f32x4 6.37261928875436e-04 6.37261928875436e-04 6.37261928875436e-04 6.37261928875436e-04
    local.set $a3
    v128.const f32x4 1.48572235717979e-05 1.48572235717979e-05 1.48572235717979e-05 1.48572235717979e-05
    local.set $a5
    v128.const f32x4 5.12229709037114e-08 5.12229709037114e-08 5.12229709037114e-08 5.12229709037114e-08
    local.set $a7
    v128.const f32x4 -8.60467152213735e-11 -8.60467152213735e-11 -8.60467152213735e-11 -8.60467152213735e-11
    local.set $a9
    v128.const f32x4 2.00018790482477e-13 2.00018790482477e-13 2.00018790482477e-13 2.00018790482477e-13
    local.set $a11
    v128.const f32x4 -2.76076847742355e-16 -2.76076847742355e-16 -2.76076847742355e-16 -2.76076847742355e-16
    local.set $a13
    v128.const f32x4 4.89352518554385e-03 4.89352518554385e-03 4.89352518554385e-03 4.89352518554385e-03
    local.set $b0
    v128.const f32x4 2.26843463243900e-03 2.26843463243900e-03 2.26843463243900e-03 2.26843463243900e-03
    local.set $b2
    v128.const f32x4 1.18534705686654e-04 1.18534705686654e-04 1.18534705686654e-04 1.18534705686654e-04
    local.set $b4
    v128.const f32x4 1.19825839466702e-06 1.19825839466702e-06 1.19825839466702e-06 1.19825839466702e-06
    local.set $b6
    block $tanhDone
      loop $tanhNext
        local.get $at
        local.get $end
        i32.eq
        br_if $tanhDone
        local.get $at
        local.get $at
        v128.load
        local.get $high
        f32x4.pmin
        local.get $low
        f32x4.pmax
        local.tee $x
        local.get $x
        f32x4.mul
        local.set $x2
        local.get $x2
        local.get $a13
        f32x4.mul
        local.get $a11
        f32x4.add
        local.get $x2
        f32x4.mul
        local.get $a9
        f32x4.add
        local.get $x2
        f32x4.mul
        local.get $a7
        f32x4.add
        local.get $x2
        f32x4.mul
        local.get $a5
        f32x4.add
        local.get $x2
        f32x4.mul
        local.get $a3
        f32x4.add
        local.get $x2
        f32x4.mul
        local.get $a1
        f32x4.add
        local.get $x
        f32x4.mul
        local.get $x2
        local.get $b6
        f32x4.mul
        local.get $b4
        f32x4.add
        local.get $x2
        f32x4.mul
        local.get $b2
        f32x4.add
        local.get $x2
        f32x4.mul
        local.get $b0
        f32x4.add
        f32x4.div
        v128.store
        local.get $at
        i32.const 16
        i32.add
        local.set $at
        br $tanhNext
      end
    end)

  ;; sigmoid: Eigen's scalar_logistic_op<float> packet path, TF 1.15's result on all but a tensor's last
  ;; (size mod 8) elements: x clamped to [-18, 18], p = x * (a1 + x2 * (a3 + ... + x2 * a9)),
  ;; q = b0 + x2 * (b2 + ... + x2 * b10), y = clamp(p / q + 0.5, 0, 1); then 1 above 18 and 0 below -18, as
  ;; spec/ops.md's float32 sigmoid says. Within 2^-22 of 1 / (1 + exp(-x)) computed in float32 on every float32
  ;; (scripts/check-elementwise.mjs), inside the op's 2^-21 tolerance.
  (func $sigmoid (export "sigmoid") (param $at i32) (param $count i32)
    (local $end i32) (local $input v128) (local $x v128) (local $x2 v128) (local $y v128) (local $low v128)
    (local $high v128) (local $zero v128) (local $one v128) (local $half v128) (local $a1 v128) (local $a3 v128)
    (local $a5 v128) (local $a7 v128) (local $a9 v128) (local $b0 v128) (local $b2 v128) (local $b4 v128)
    (local $b6 v128) (local $b8 v128) (local $b10 v128)
    local.get $at
    local.get $count
    i32.const 2
    i32.shl
    i32.add
    local.set $end
    ;; the constants, once: in locals, not rebuilt on every iteration
    v128.const f32x4 -18 -18 -18 -18
    local.set $low
    v128.const f32x4 18 18 18 18
    local.set $high
    v128.const f32x4 0 0 0 0
    local.set $zero
    v128.const f32x4 1 1 1 1
    local.set $one
    v128.const f32x4 0.5 0.5 0.5 0.5
    local.set $half
    v128.const f32x4 2.48287947061529e-01 2.48287947061529e-01 2.48287947061529e-01 2.48287947061529e-01
    local.set $a1
    v128.const f32x4 8.51377133304701e-03 8.51377133304701e-03 8.51377133304701e-03 8.51377133304701e-03
    local.set $a3
    v128.const f32x4 6.08574864600143e-05 6.08574864600143e-05 6.08574864600143e-05 6.08574864600143e-05
    local.set $a5
    v128.const f32x4 1.15627324459942e-07 1.15627324459942e-07 1.15627324459942e-07 1.15627324459942e-07
    local.set $a7
    v128.const f32x4 4.37031012579801e-11 4.37031012579801e-11 4.37031012579801e-11 4.37031012579801e-11
    local.set $a9
    v128.const f32x4 9.93151921023180e-01 9.93151921023180e-01 9.93151921023180e-01 9.93151921023180e-01
    local.set $b0
    v128.const f32x4 1.16817656904453e-01 1.16817656904453e-01 1.16817656904453e-01 1.16817656904453e-01
    local.set $b2
    v128.const f32x4 1.70198817374094e-03 1.70198817374094e-03 1.70198817374094e-03 1.70198817374094e-03
    local.set $b4
    v128.const f32x4 6.29106785017040e-06 6.29106785017040e-06 6.29106785017040e-06 6.29106785017040e-06
    local.set $b6
    v128.const f32x4 5.76102136993427e-09 5.76102136993427e-09 5.76102136993427e-09 5.76102136993427e-09
    local.set $b8
    v128.const f32x4 6.10247389755681e-13 6.10247389755681e-13 6.10247389755681e-13 6.10247389755681e-13
    local.set $b10
    block $sigmoidDone
      loop $sigmoidNext
        local.get $at
        local.get $end
        i32.eq
        br_if $sigmoidDone
        local.get $at
        local.get $at
        v128.load
        local.tee $input
        local.get $high
        f32x4.pmin
        local.get $low
        f32x4.pmax
        local.tee $x
        local.get $x
        f32x4.mul
        local.set $x2
        local.get $x2
        local.get $a9
        f32x4.mul
        local.get $a7
        f32x4.add
        local.get $x2
        f32x4.mul
        local.get $a5
        f32x4.add
        local.get $x2
        f32x4.mul
        local.get $a3
        f32x4.add
        local.get $x2
        f32x4.mul
        local.get $a1
        f32x4.add
        local.get $x
        f32x4.mul
        local.get $x2
        local.get $b10
        f32x4.mul
        local.get $b8
        f32x4.add
        local.get $x2
        f32x4.mul
        local.get $b6
        f32x4.add
        local.get $x2
        f32x4.mul
        local.get $b4
        f32x4.add
        local.get $x2
        f32x4.mul
        local.get $b2
        f32x4.add
        local.get $x2
        f32x4.mul
        local.get $b0
        f32x4.add
        f32x4.div
        local.get $half
        f32x4.add
        local.get $one
        f32x4.pmin
        local.get $zero
        f32x4.pmax
        ;; the float32 semantics' cut-offs: 1 above 18, 0 below -18
        local.set $y
        local.get $one
        local.get $y
        local.get $input
        local.get $high
        f32x4.gt
        v128.bitselect
        local.set $y
        local.get $zero
        local.get $y
        local.get $input
        local.get $low
        f32x4.lt
        v128.bitselect
        v128.store
        local.get $at
        i32.const 16
        i32.add
        local.set $at
        br $sigmoidNext
      end
    end)

  ;; relu: pmax(x, 0) = x < 0 ? 0 : x, so NaN stays NaN (std::max(x, 0) keeps it too) and -0 stays -0 (zeros'
  ;; signs are not significant).
  (func $relu (export "relu") (param $at i32) (param $count i32)
    (local $end i32) (local $zero v128)
    local.get $at
    local.get $count
    i32.const 2
    i32.shl
    i32.add
    local.set $end
    ;; the constants, once: in locals, not rebuilt on every iteration
    v128.const f32x4 0 0 0 0
    local.set $zero
    block $reluDone
      loop $reluNext
        local.get $at
        local.get $end
        i32.eq
        br_if $reluDone
        local.get $at
        local.get $at
        v128.load
        local.get $zero
        f32x4.pmax
        v128.store
        local.get $at
        i32.const 16
        i32.add
        local.set $at
        br $reluNext
      end
    end)
)
