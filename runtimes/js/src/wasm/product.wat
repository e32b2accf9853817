;; SBIF's float32 product kernel (linear, matmul and conv2d's windows) in WebAssembly SIMD.
;;
;; Assembled by runtimes/js/scripts/gen-wasm.mjs, whose small assembler reads this subset of the text format: a
;; module of one memory import and functions with (export), (param), (result) and (local) declarations, and flat
;; instructions (block/loop ... end, labels by name; no folded expressions).
;;
;; product(x, rows, k, w, panels, out) computes `rows` rows of out = x * W, all pointers in bytes:
;;   x    rows x k float32 inputs, row-major;
;;   w    W packed in panels of 8 columns: W[i, 8p + j] at w + 4 * ((p * k + i) * 8 + j), zeros beyond W's columns;
;;   out  rows x (panels * 8) float32 sums, row-major.
;; Each output is the sum of its k terms in order i = 0 .. k - 1, starting from +0, every product rounded to float32
;; before it is added (f32x4.mul then f32x4.add: never fused, so the result is the same on every machine; relaxed
;; SIMD's madd may or may not fuse). That is the order of every row whatever the batch: rows are computed four at a
;; time, panel by panel (a register tile of 4 rows x 2 vectors), and the last rows % 4 of a batch one at a time, two
;; panels at once (a tile of 1 row x 4 vectors: one observation keeps four independent chains of additions busy),
;; all in the same order of terms.
;; The bias is not added here: the caller adds it to the rounded sum, as spec/ops.md's linear says.
(module
  (import "env" "memory" (memory 1))
  (func $product (export "product")
    (param $x i32) (param $rows i32) (param $k i32) (param $w i32) (param $panels i32) (param $out i32)
    (local $rowBytes i32)      ;; one input row: k * 4
    (local $rowBytes2 i32)
    (local $rowBytes3 i32)
    (local $outRowBytes i32)   ;; one output row: panels * 32
    (local $panelBytes i32)    ;; one weight panel: k * 32
    (local $panelsLeft i32)
    (local $wPanel i32)        ;; the current panel's weights
    (local $outPanel i32)      ;; the current panel's first column in the current row's outputs
    (local $outTile i32)       ;; the current row's outputs at that panel
    (local $remaining i32)     ;; rows still to compute
    (local $xRow i32)          ;; the current (first) row's inputs
    (local $xp i32)            ;; the current term's input in that row
    (local $xEnd i32)
    (local $wp i32)            ;; the current term's 8 weights in the panel
    (local $wq i32)            ;; the same term's 8 weights in the next panel
    (local $w0 v128) (local $w1 v128) (local $xv v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $a4 v128) (local $a5 v128) (local $a6 v128) (local $a7 v128)
    local.get $k
    i32.const 2
    i32.shl
    local.tee $rowBytes
    i32.const 1
    i32.shl
    local.set $rowBytes2
    local.get $rowBytes2
    local.get $rowBytes
    i32.add
    local.set $rowBytes3
    local.get $panels
    i32.const 5
    i32.shl
    local.set $outRowBytes
    local.get $k
    i32.const 5
    i32.shl
    local.set $panelBytes
    ;; rows in tiles of four, panel by panel
    local.get $w
    local.set $wPanel
    local.get $out
    local.set $outPanel
    local.get $panels
    local.set $panelsLeft
    block $panelsDone
      loop $panel
        local.get $panelsLeft
        i32.eqz
        br_if $panelsDone
        local.get $x
        local.set $xRow
        local.get $outPanel
        local.set $outTile
        local.get $rows
        local.set $remaining
        block $tilesDone
          loop $tile
            local.get $remaining
            i32.const 4
            i32.lt_u
            br_if $tilesDone
            v128.const i32x4 0 0 0 0
            local.tee $a0
            local.tee $a1
            local.tee $a2
            local.tee $a3
            local.tee $a4
            local.tee $a5
            local.tee $a6
            local.set $a7
            local.get $xRow
            local.tee $xp
            local.get $rowBytes
            i32.add
            local.set $xEnd
            local.get $wPanel
            local.set $wp
            block $termsDone
              loop $term
                local.get $xp
                local.get $xEnd
                i32.eq
                br_if $termsDone
                local.get $wp
                v128.load
                local.set $w0
                local.get $wp
                v128.load offset=16
                local.set $w1
                local.get $xp
                v128.load32_splat
                local.tee $xv
                local.get $w0
                f32x4.mul
                local.get $a0
                f32x4.add
                local.set $a0
                local.get $xv
                local.get $w1
                f32x4.mul
                local.get $a1
                f32x4.add
                local.set $a1
                local.get $xp
                local.get $rowBytes
                i32.add
                v128.load32_splat
                local.tee $xv
                local.get $w0
                f32x4.mul
                local.get $a2
                f32x4.add
                local.set $a2
                local.get $xv
                local.get $w1
                f32x4.mul
                local.get $a3
                f32x4.add
                local.set $a3
                local.get $xp
                local.get $rowBytes2
                i32.add
                v128.load32_splat
                local.tee $xv
                local.get $w0
                f32x4.mul
                local.get $a4
                f32x4.add
                local.set $a4
                local.get $xv
                local.get $w1
                f32x4.mul
                local.get $a5
                f32x4.add
                local.set $a5
                local.get $xp
                local.get $rowBytes3
                i32.add
                v128.load32_splat
                local.tee $xv
                local.get $w0
                f32x4.mul
                local.get $a6
                f32x4.add
                local.set $a6
                local.get $xv
                local.get $w1
                f32x4.mul
                local.get $a7
                f32x4.add
                local.set $a7
                local.get $xp
                i32.const 4
                i32.add
                local.set $xp
                local.get $wp
                i32.const 32
                i32.add
                local.set $wp
                br $term
              end
            end
            local.get $outTile
            local.get $a0
            v128.store
            local.get $outTile
            local.get $a1
            v128.store offset=16
            local.get $outTile
            local.get $outRowBytes
            i32.add
            local.set $outTile
            local.get $outTile
            local.get $a2
            v128.store
            local.get $outTile
            local.get $a3
            v128.store offset=16
            local.get $outTile
            local.get $outRowBytes
            i32.add
            local.set $outTile
            local.get $outTile
            local.get $a4
            v128.store
            local.get $outTile
            local.get $a5
            v128.store offset=16
            local.get $outTile
            local.get $outRowBytes
            i32.add
            local.set $outTile
            local.get $outTile
            local.get $a6
            v128.store
            local.get $outTile
            local.get $a7
            v128.store offset=16
            local.get $outTile
            local.get $outRowBytes
            i32.add
            local.set $outTile
            local.get $xRow
            local.get $rowBytes3
            i32.add
            local.get $rowBytes
            i32.add
            local.set $xRow
            local.get $remaining
            i32.const 4
            i32.sub
            local.set $remaining
            br $tile
          end
        end
        local.get $wPanel
        local.get $panelBytes
        i32.add
        local.set $wPanel
        local.get $outPanel
        i32.const 32
        i32.add
        local.set $outPanel
        local.get $panelsLeft
        i32.const 1
        i32.sub
        local.set $panelsLeft
        br $panel
      end
    end
    ;; the last rows % 4 rows, one at a time, two panels at once
    local.get $rows
    i32.const -4
    i32.and
    local.tee $remaining
    local.get $rowBytes
    i32.mul
    local.get $x
    i32.add
    local.set $xRow
    local.get $remaining
    local.get $outRowBytes
    i32.mul
    local.get $out
    i32.add
    local.set $outTile
    local.get $rows
    i32.const 3
    i32.and
    local.set $remaining
    block $rowsDone
      loop $row
        local.get $remaining
        i32.eqz
        br_if $rowsDone
        local.get $w
        local.set $wPanel
        local.get $outTile
        local.set $outPanel
        local.get $panels
        local.set $panelsLeft
        block $pairsDone
          loop $pair
            local.get $panelsLeft
            i32.const 2
            i32.lt_u
            br_if $pairsDone
            v128.const i32x4 0 0 0 0
            local.tee $a0
            local.tee $a1
            local.tee $a2
            local.set $a3
            local.get $xRow
            local.tee $xp
            local.get $rowBytes
            i32.add
            local.set $xEnd
            local.get $wPanel
            local.tee $wp
            local.get $panelBytes
            i32.add
            local.set $wq
            block $pairTermsDone
              loop $pairTerm
                local.get $xp
                local.get $xEnd
                i32.eq
                br_if $pairTermsDone
                local.get $xp
                v128.load32_splat
                local.set $xv
                local.get $xv
                local.get $wp
                v128.load
                f32x4.mul
                local.get $a0
                f32x4.add
                local.set $a0
                local.get $xv
                local.get $wp
                v128.load offset=16
                f32x4.mul
                local.get $a1
                f32x4.add
                local.set $a1
                local.get $xv
                local.get $wq
                v128.load
                f32x4.mul
                local.get $a2
                f32x4.add
                local.set $a2
                local.get $xv
                local.get $wq
                v128.load offset=16
                f32x4.mul
                local.get $a3
                f32x4.add
                local.set $a3
                local.get $xp
                i32.const 4
                i32.add
                local.set $xp
                local.get $wp
                i32.const 32
                i32.add
                local.set $wp
                local.get $wq
                i32.const 32
                i32.add
                local.set $wq
                br $pairTerm
              end
            end
            local.get $outPanel
            local.get $a0
            v128.store
            local.get $outPanel
            local.get $a1
            v128.store offset=16
            local.get $outPanel
            local.get $a2
            v128.store offset=32
            local.get $outPanel
            local.get $a3
            v128.store offset=48
            local.get $wq
            local.set $wPanel
            local.get $outPanel
            i32.const 64
            i32.add
            local.set $outPanel
            local.get $panelsLeft
            i32.const 2
            i32.sub
            local.set $panelsLeft
            br $pair
          end
        end
        ;; an odd last panel
        block $lastPanelDone
          local.get $panelsLeft
          i32.eqz
          br_if $lastPanelDone
          v128.const i32x4 0 0 0 0
          local.tee $a0
          local.set $a1
          local.get $xRow
          local.tee $xp
          local.get $rowBytes
          i32.add
          local.set $xEnd
          local.get $wPanel
          local.set $wp
          block $lastTermsDone
            loop $lastTerm
              local.get $xp
              local.get $xEnd
              i32.eq
              br_if $lastTermsDone
              local.get $xp
              v128.load32_splat
              local.set $xv
              local.get $xv
              local.get $wp
              v128.load
              f32x4.mul
              local.get $a0
              f32x4.add
              local.set $a0
              local.get $xv
              local.get $wp
              v128.load offset=16
              f32x4.mul
              local.get $a1
              f32x4.add
              local.set $a1
              local.get $xp
              i32.const 4
              i32.add
              local.set $xp
              local.get $wp
              i32.const 32
              i32.add
              local.set $wp
              br $lastTerm
            end
          end
          local.get $outPanel
          local.get $a0
          v128.store
          local.get $outPanel
          local.get $a1
          v128.store offset=16
        end
        local.get $xRow
        local.get $rowBytes
        i32.add
        local.set $xRow
        local.get $outTile
        local.get $outRowBytes
        i32.add
        local.set $outTile
        local.get $remaining
        i32.const 1
        i32.sub
        local.set $remaining
        br $row
      end
    end
  )
)
