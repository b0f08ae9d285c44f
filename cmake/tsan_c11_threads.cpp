// ThreadSanitizer builds only (KCRON_SANITIZE=thread; cmake/options.cmake links this into every
// executable): glibc's C11 threads (<threads.h>) re-implemented over the pthread calls TSan
// intercepts. librdkafka uses C11 threads, mutexes, condition variables and call_once; glibc 2.34+
// runs them without calling the public pthread functions, and GCC 12's libtsan intercepts only
// those (google/sanitizers#1195). Unseen, thrd_create leaves librdkafka's threads without TSan's
// per-thread state (they crash in their first intercepted call), and unseen locks make every
// hand-over between librdkafka's threads look like a data race. Defined in the executable, these
// take precedence over glibc's. The casts rely on glibc's layout, in which mtx_t, cnd_t and
// once_flag are pthread_mutex_t, pthread_cond_t and pthread_once_t (checked below).
#include <pthread.h>
#include <threads.h>

#include <cerrno>
#include <cstdint>
#include <ctime>
#include <new>

static_assert(sizeof(mtx_t) == sizeof(pthread_mutex_t) && alignof(mtx_t) == alignof(pthread_mutex_t));
static_assert(sizeof(cnd_t) == sizeof(pthread_cond_t) && alignof(cnd_t) == alignof(pthread_cond_t));
static_assert(sizeof(once_flag) == sizeof(pthread_once_t));

namespace {

struct ThreadStart {
  thrd_start_t function;
  void* argument;
};

void* run_thread(void* raw_start) {
  const ThreadStart start = *static_cast<ThreadStart*>(raw_start);
  delete static_cast<ThreadStart*>(raw_start);
  return reinterpret_cast<void*>(static_cast<std::intptr_t>(start.function(start.argument)));
}

// glibc's mapping of a pthread error to a C11 result.
int c11_result(int error) {
  switch (error) {
    case 0:
      return thrd_success;
    case ENOMEM:
      return thrd_nomem;
    case ETIMEDOUT:
      return thrd_timedout;
    case EBUSY:
      return thrd_busy;
    default:
      return thrd_error;
  }
}

pthread_mutex_t* as_pthread(mtx_t* mutex) {
  return reinterpret_cast<pthread_mutex_t*>(mutex);
}
pthread_cond_t* as_pthread(cnd_t* condition) {
  return reinterpret_cast<pthread_cond_t*>(condition);
}

}  // namespace

extern "C" {

int thrd_create(thrd_t* thread, thrd_start_t function, void* argument) {
  auto* start = new (std::nothrow) ThreadStart{function, argument};
  if (start == nullptr) return thrd_nomem;
  const int error = pthread_create(thread, nullptr, run_thread, start);
  if (error != 0) delete start;
  return c11_result(error);
}

// The thread's int result travels as its pthread return value (run_thread above).
int thrd_join(thrd_t thread, int* result) {
  void* value = nullptr;
  const int error = pthread_join(thread, &value);
  if (error == 0 && result != nullptr) *result = static_cast<int>(reinterpret_cast<std::intptr_t>(value));
  return c11_result(error);
}

int mtx_init(mtx_t* mutex, int type) {
  pthread_mutexattr_t attributes;
  pthread_mutexattr_init(&attributes);
  pthread_mutexattr_settype(&attributes, (type & mtx_recursive) != 0 ? PTHREAD_MUTEX_RECURSIVE : PTHREAD_MUTEX_DEFAULT);
  const int error = pthread_mutex_init(as_pthread(mutex), &attributes);
  pthread_mutexattr_destroy(&attributes);
  return c11_result(error);
}

int mtx_lock(mtx_t* mutex) {
  return c11_result(pthread_mutex_lock(as_pthread(mutex)));
}
int mtx_trylock(mtx_t* mutex) {
  return c11_result(pthread_mutex_trylock(as_pthread(mutex)));
}
int mtx_timedlock(mtx_t* mutex, const struct timespec* deadline) {
  return c11_result(pthread_mutex_timedlock(as_pthread(mutex), deadline));
}
int mtx_unlock(mtx_t* mutex) {
  return c11_result(pthread_mutex_unlock(as_pthread(mutex)));
}
void mtx_destroy(mtx_t* mutex) {
  pthread_mutex_destroy(as_pthread(mutex));
}

int cnd_init(cnd_t* condition) {
  return c11_result(pthread_cond_init(as_pthread(condition), nullptr));
}
int cnd_signal(cnd_t* condition) {
  return c11_result(pthread_cond_signal(as_pthread(condition)));
}
int cnd_broadcast(cnd_t* condition) {
  return c11_result(pthread_cond_broadcast(as_pthread(condition)));
}
int cnd_wait(cnd_t* condition, mtx_t* mutex) {
  return c11_result(pthread_cond_wait(as_pthread(condition), as_pthread(mutex)));
}
// C11's deadline is TIME_UTC, CLOCK_REALTIME: the clock of a condition variable with default attributes.
int cnd_timedwait(cnd_t* condition, mtx_t* mutex, const struct timespec* deadline) {
  return c11_result(pthread_cond_timedwait(as_pthread(condition), as_pthread(mutex), deadline));
}
void cnd_destroy(cnd_t* condition) {
  pthread_cond_destroy(as_pthread(condition));
}

void call_once(once_flag* flag, void (*function)()) {
  pthread_once(reinterpret_cast<pthread_once_t*>(flag), function);
}

}  // extern "C"
