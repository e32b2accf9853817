;; SBIF's float32 product kernel (linear, matmul and conv2d's windows) in WebAssembly SIMD.
;;
;; Assembled by runtimes/js/scripts/gen-wasm.mjs, whose small assembler reads this subset of the text format: a
;; module of one memory import and functions with (export), (param), (result) and (local) declarations, and flat
;; instructions (block/loop ... end, labels by name; no folded expressions).
;;
;; product(x, rows, step, runs, run, runStep, w, panels, bias, out) computes `rows` rows of out = X * W + bias, where
;; row r of X, k = runs * run / 4 float32s, is `runs` runs of `run` bytes read from x + r * step, the runs runStep bytes
;; apart. All sizes and pointers are in bytes:
;;   x     a matrix's rows (runs = 1, run = step = 4 * k), or conv2d's windows read straight from an NHWC image: the
;;         windows along one output row, step = 4 * stride * C apart, each kh runs (one per kernel row) of kw * C
;;         floats, runStep = 4 * W * C apart, so that X's row is the window in the kernel's [kh, kw, C] order;
;;   w     W packed in panels of 8 columns: W[i, 8p + j] at w + 4 * ((p * k + i) * 8 + j), zeros beyond W's columns;
;;   bias  panels * 8 float32s (zeros beyond W's columns, and all zeros for a product without one);
;;   out   rows x (panels * 8) float32 results, row-major.
;; Each output is the sum of its k terms in order i = 0 .. k - 1, starting from +0, every product rounded to float32
;; before it is added (f32x4.mul then f32x4.add: never fused, so the result is the same on every machine; relaxed
;; SIMD's madd may or may not fuse), then the bias added to that rounded sum, as spec/ops.md's linear says. (A sum
;; that starts from +0 is never -0, so adding a zero bias changes no bit.) That is the order of every row whatever
;; the batch: rows are computed four at a time, panel by panel (a register tile of 4 rows x 2 vectors), and the last
;; rows % 4 of a batch one at a time, four panels at once (1 row x 8 vectors: a single observation keeps eight
;; independent chains of additions busy while its weights stream past once), then two, then one; all in the same
;; order of terms.
(module
  (import "env" "memory" (memory 1))
  (func $product (export "product")
    (param $x i32) (param $rows i32) (param $step i32) (param $runs i32) (param $run i32) (param $runStep i32)
    (param $w i32) (param $panels i32) (param $bias i32) (param $out i32)
    (local $step2 i32)         ;; from a tile's first row to its others
    (local $step3 i32)
    (local $outRowBytes i32)   ;; one output row: panels * 32
    (local $panelBytes i32)    ;; one weight panel: k * 32
    (local $panelBytes2 i32)
    (local $panelBytes3 i32)
    (local $panelsLeft i32)
    (local $wPanel i32)        ;; the current (first) panel's weights
    (local $bPanel i32)        ;; its bias
    (local $outPanel i32)      ;; its first column in the current row's outputs
    (local $outTile i32)       ;; the current row's outputs at that panel
    (local $remaining i32)     ;; rows still to compute
    (local $xRow i32)          ;; the current (first) row's inputs
    (local $xRun i32)          ;; the current run of that row
    (local $runsLeft i32)
    (local $xp i32)            ;; the current term's input in that run
    (local $xEnd i32)
    (local $wp i32)            ;; the current term's 8 weights in the (first) panel
    (local $w0 v128) (local $w1 v128) (local $xv v128) (local $b0 v128) (local $b1 v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $a4 v128) (local $a5 v128) (local $a6 v128) (local $a7 v128)
    local.get $step
    i32.const 1
    i32.shl
    local.tee $step2
    local.get $step
    i32.add
    local.set $step3
    local.get $panels
    i32.const 5
    i32.shl
    local.set $outRowBytes
    ;; a panel: k * 8 floats, k * 32 = runs * run * 8 bytes
    local.get $runs
    local.get $run
    i32.mul
    i32.const 3
    i32.shl
    local.tee $panelBytes
    i32.const 1
    i32.shl
    local.set $panelBytes2
    local.get $panelBytes2
    local.get $panelBytes
    i32.add
    local.set $panelBytes3
    ;; rows in tiles of four, panel by panel
    local.get $w
    local.set $wPanel
    local.get $bias
    local.set $bPanel
    local.get $out
    local.set $outPanel
    local.get $panels
    local.set $panelsLeft
    block $panelsDone
      loop $panel
        local.get $panelsLeft
        i32.eqz
        br_if $panelsDone
        local.get $bPanel
        v128.load
        local.set $b0
        local.get $bPanel
        v128.load offset=16
        local.set $b1
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
            local.get $wPanel
            local.set $wp
            local.get $xRow
            local.set $xRun
            local.get $runs
            local.set $runsLeft
            block $tileRunsDone
              loop $tileRun
                local.get $runsLeft
                i32.eqz
                br_if $tileRunsDone
                local.get $xRun
                local.tee $xp
                local.get $run
                i32.add
                local.set $xEnd
                block $tileTermsDone
                  loop $tileTerm
                    local.get $xp
                    local.get $xEnd
                    i32.eq
                    br_if $tileTermsDone
                    local.get $wp
                    v128.load
                    local.set $w0
                    local.get $wp
                    v128.load offset=16
                    local.set $w1
                    local.get $xp
                    v128.load32_splat
                    local.set $xv
                    local.get $xv
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
                    local.get $step
                    i32.add
                    v128.load32_splat
                    local.set $xv
                    local.get $xv
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
                    local.get $step2
                    i32.add
                    v128.load32_splat
                    local.set $xv
                    local.get $xv
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
                    local.get $step3
                    i32.add
                    v128.load32_splat
                    local.set $xv
                    local.get $xv
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
                    br $tileTerm
                  end
                end
                local.get $xRun
                local.get $runStep
                i32.add
                local.set $xRun
                local.get $runsLeft
                i32.const 1
                i32.sub
                local.set $runsLeft
                br $tileRun
              end
            end
            local.get $outTile
            local.get $a0
            local.get $b0
            f32x4.add
            v128.store
            local.get $outTile
            local.get $a1
            local.get $b1
            f32x4.add
            v128.store offset=16
            local.get $outTile
            local.get $outRowBytes
            i32.add
            local.set $outTile
            local.get $outTile
            local.get $a2
            local.get $b0
            f32x4.add
            v128.store
            local.get $outTile
            local.get $a3
            local.get $b1
            f32x4.add
            v128.store offset=16
            local.get $outTile
            local.get $outRowBytes
            i32.add
            local.set $outTile
            local.get $outTile
            local.get $a4
            local.get $b0
            f32x4.add
            v128.store
            local.get $outTile
            local.get $a5
            local.get $b1
            f32x4.add
            v128.store offset=16
            local.get $outTile
            local.get $outRowBytes
            i32.add
            local.set $outTile
            local.get $outTile
            local.get $a6
            local.get $b0
            f32x4.add
            v128.store
            local.get $outTile
            local.get $a7
            local.get $b1
            f32x4.add
            v128.store offset=16
            local.get $outTile
            local.get $outRowBytes
            i32.add
            local.set $outTile
            local.get $xRow
            local.get $step3
            i32.add
            local.get $step
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
        local.get $bPanel
        i32.const 32
        i32.add
        local.set $bPanel
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
    ;; the last rows % 4 rows, one at a time: four panels at once, then two, then one
    local.get $rows
    i32.const -4
    i32.and
    local.tee $remaining
    local.get $step
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
        local.get $bias
        local.set $bPanel
        local.get $outTile
        local.set $outPanel
        local.get $panels
        local.set $panelsLeft
        ;; 4 panels at once while four remain
        block $quadsDone
          loop $quad
            local.get $panelsLeft
            i32.const 4
            i32.lt_u
            br_if $quadsDone
            v128.const i32x4 0 0 0 0
            local.tee $a0
            local.tee $a1
            local.tee $a2
            local.tee $a3
            local.tee $a4
            local.tee $a5
            local.tee $a6
            local.set $a7
            local.get $wPanel
            local.set $wp
            local.get $xRow
            local.set $xRun
            local.get $runs
            local.set $runsLeft
            block $quadRunsDone
              loop $quadRun
                local.get $runsLeft
                i32.eqz
                br_if $quadRunsDone
                local.get $xRun
                local.tee $xp
                local.get $run
                i32.add
                local.set $xEnd
                block $quadTermsDone
                  loop $quadTerm
                    local.get $xp
                    local.get $xEnd
                    i32.eq
                    br_if $quadTermsDone
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
                    local.get $wp
                    local.get $panelBytes
                    i32.add
                    v128.load
                    f32x4.mul
                    local.get $a2
                    f32x4.add
                    local.set $a2
                    local.get $xv
                    local.get $wp
                    local.get $panelBytes
                    i32.add
                    v128.load offset=16
                    f32x4.mul
                    local.get $a3
                    f32x4.add
                    local.set $a3
                    local.get $xv
                    local.get $wp
                    local.get $panelBytes2
                    i32.add
                    v128.load
                    f32x4.mul
                    local.get $a4
                    f32x4.add
                    local.set $a4
                    local.get $xv
                    local.get $wp
                    local.get $panelBytes2
                    i32.add
                    v128.load offset=16
                    f32x4.mul
                    local.get $a5
                    f32x4.add
                    local.set $a5
                    local.get $xv
                    local.get $wp
                    local.get $panelBytes3
                    i32.add
                    v128.load
                    f32x4.mul
                    local.get $a6
                    f32x4.add
                    local.set $a6
                    local.get $xv
                    local.get $wp
                    local.get $panelBytes3
                    i32.add
                    v128.load offset=16
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
                    br $quadTerm
                  end
                end
                local.get $xRun
                local.get $runStep
                i32.add
                local.set $xRun
                local.get $runsLeft
                i32.const 1
                i32.sub
                local.set $runsLeft
                br $quadRun
              end
            end
            local.get $outPanel
            local.get $a0
            local.get $bPanel
            v128.load
            f32x4.add
            v128.store
            local.get $outPanel
            local.get $a1
            local.get $bPanel
            v128.load offset=16
            f32x4.add
            v128.store offset=16
            local.get $outPanel
            local.get $a2
            local.get $bPanel
            v128.load offset=32
            f32x4.add
            v128.store offset=32
            local.get $outPanel
            local.get $a3
            local.get $bPanel
            v128.load offset=48
            f32x4.add
            v128.store offset=48
            local.get $outPanel
            local.get $a4
            local.get $bPanel
            v128.load offset=64
            f32x4.add
            v128.store offset=64
            local.get $outPanel
            local.get $a5
            local.get $bPanel
            v128.load offset=80
            f32x4.add
            v128.store offset=80
            local.get $outPanel
            local.get $a6
            local.get $bPanel
            v128.load offset=96
            f32x4.add
            v128.store offset=96
            local.get $outPanel
            local.get $a7
            local.get $bPanel
            v128.load offset=112
            f32x4.add
            v128.store offset=112
            local.get $wPanel
            local.get $panelBytes3
            i32.add
            local.get $panelBytes
            i32.add
            local.set $wPanel
            local.get $bPanel
            i32.const 128
            i32.add
            local.set $bPanel
            local.get $outPanel
            i32.const 128
            i32.add
            local.set $outPanel
            local.get $panelsLeft
            i32.const 4
            i32.sub
            local.set $panelsLeft
            br $quad
          end
        end
        ;; 2 panels at once if that many remain
        block $pairsDone
          local.get $panelsLeft
          i32.const 2
          i32.lt_u
          br_if $pairsDone
          v128.const i32x4 0 0 0 0
          local.tee $a0
          local.tee $a1
          local.tee $a2
          local.set $a3
          local.get $wPanel
          local.set $wp
          local.get $xRow
          local.set $xRun
          local.get $runs
          local.set $runsLeft
          block $pairRunsDone
            loop $pairRun
              local.get $runsLeft
              i32.eqz
              br_if $pairRunsDone
              local.get $xRun
              local.tee $xp
              local.get $run
              i32.add
              local.set $xEnd
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
                  local.get $wp
                  local.get $panelBytes
                  i32.add
                  v128.load
                  f32x4.mul
                  local.get $a2
                  f32x4.add
                  local.set $a2
                  local.get $xv
                  local.get $wp
                  local.get $panelBytes
                  i32.add
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
                  br $pairTerm
                end
              end
              local.get $xRun
              local.get $runStep
              i32.add
              local.set $xRun
              local.get $runsLeft
              i32.const 1
              i32.sub
              local.set $runsLeft
              br $pairRun
            end
          end
          local.get $outPanel
          local.get $a0
          local.get $bPanel
          v128.load
          f32x4.add
          v128.store
          local.get $outPanel
          local.get $a1
          local.get $bPanel
          v128.load offset=16
          f32x4.add
          v128.store offset=16
          local.get $outPanel
          local.get $a2
          local.get $bPanel
          v128.load offset=32
          f32x4.add
          v128.store offset=32
          local.get $outPanel
          local.get $a3
          local.get $bPanel
          v128.load offset=48
          f32x4.add
          v128.store offset=48
          local.get $wPanel
          local.get $panelBytes
          i32.add
          local.get $panelBytes
          i32.add
          local.set $wPanel
          local.get $bPanel
          i32.const 64
          i32.add
          local.set $bPanel
          local.get $outPanel
          i32.const 64
          i32.add
          local.set $outPanel
          local.get $panelsLeft
          i32.const 2
          i32.sub
          local.set $panelsLeft
        end
        ;; 1 panel at once if that many remain
        block $singlesDone
          local.get $panelsLeft
          i32.const 1
          i32.lt_u
          br_if $singlesDone
          v128.const i32x4 0 0 0 0
          local.tee $a0
          local.set $a1
          local.get $wPanel
          local.set $wp
          local.get $xRow
          local.set $xRun
          local.get $runs
          local.set $runsLeft
          block $singleRunsDone
            loop $singleRun
              local.get $runsLeft
              i32.eqz
              br_if $singleRunsDone
              local.get $xRun
              local.tee $xp
              local.get $run
              i32.add
              local.set $xEnd
              block $singleTermsDone
                loop $singleTerm
                  local.get $xp
                  local.get $xEnd
                  i32.eq
                  br_if $singleTermsDone
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
                  br $singleTerm
                end
              end
              local.get $xRun
              local.get $runStep
              i32.add
              local.set $xRun
              local.get $runsLeft
              i32.const 1
              i32.sub
              local.set $runsLeft
              br $singleRun
            end
          end
          local.get $outPanel
          local.get $a0
          local.get $bPanel
          v128.load
          f32x4.add
          v128.store
          local.get $outPanel
          local.get $a1
          local.get $bPanel
          v128.load offset=16
          f32x4.add
          v128.store offset=16
          local.get $wPanel
          local.get $panelBytes
          i32.add
          local.set $wPanel
          local.get $bPanel
          i32.const 32
          i32.add
          local.set $bPanel
          local.get $outPanel
          i32.const 32
          i32.add
          local.set $outPanel
          local.get $panelsLeft
          i32.const 1
          i32.sub
          local.set $panelsLeft
        end
        local.get $xRow
        local.get $step
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
