#include <microhttpd.h>
#include <sys/epoll.h> /* the HTTP module watches suspended sockets for hang-ups, as MHD cannot */

/* Swift cannot call C variadic functions: non-variadic views of the one info query we need. */
static inline int mhd_shim_connection_socket(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    return info == NULL ? -1 : info->connect_fd;
}

static inline unsigned short mhd_shim_daemon_port(struct MHD_Daemon *daemon) {
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info == NULL ? 0 : info->port;
}
