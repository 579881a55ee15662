;; The WebAssembly guest of examples/wasm-guest.ts, compiled at run time with
;; the `wabt` package. It reaches the network only through its host's
;; imports, and no import takes a tenant: the host bound this instance to one
;; tenant's scope when it instantiated it, so whatever the guest asks for is
;; decided by that tenant's policy.
;;
;; Host imports ("taps"):
;;   arg(i, ptr, cap) -> len      copy argument i (a target endpoint) to memory; -1 when none
;;   connect(ptr, len) -> handle  open a connection to the endpoint text; the outcome comes later
;;   send(handle, ptr, len) -> 0 | -1
;;   close(handle)
;;   log(ptr, len)
;; Guest exports, called by the host:
;;   start()                      connect to every argument
;;   on_ready(handle)             connected: send the greeting
;;   on_message(handle, len)      a reply is in the inbox: log it, close
;;   on_error(handle, len)        why it failed is in the inbox: log it
(module
  (import "taps" "arg" (func $arg (param i32 i32 i32) (result i32)))
  (import "taps" "connect" (func $connect (param i32 i32) (result i32)))
  (import "taps" "send" (func $send (param i32 i32 i32) (result i32)))
  (import "taps" "close" (func $close (param i32)))
  (import "taps" "log" (func $log (param i32 i32)))

  ;; memory: 0..63 the greeting, 64..319 the inbox, 512..1023 four argument slots of 128 bytes
  (memory (export "memory") 1)
  (data (i32.const 0) "hello from a wasm guest")
  (global $greeting_len i32 (i32.const 23))
  (global (export "inbox") i32 (i32.const 64))
  (global (export "inbox_size") i32 (i32.const 256))

  (func (export "start")
    (local $i i32)
    (local $ptr i32)
    (local $len i32)
    (block $done
      (loop $next
        (local.set $ptr (i32.add (i32.const 512) (i32.mul (local.get $i) (i32.const 128))))
        (local.set $len (call $arg (local.get $i) (local.get $ptr) (i32.const 128)))
        (br_if $done (i32.lt_s (local.get $len) (i32.const 0)))
        (drop (call $connect (local.get $ptr) (local.get $len)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $next (i32.lt_u (local.get $i) (i32.const 4)))))
  )

  (func (export "on_ready") (param $h i32)
    (drop (call $send (local.get $h) (i32.const 0) (global.get $greeting_len))))

  (func (export "on_message") (param $h i32) (param $len i32)
    (call $log (i32.const 64) (local.get $len))
    (call $close (local.get $h)))

  (func (export "on_error") (param $h i32) (param $len i32)
    (call $log (i32.const 64) (local.get $len)))
)
