/* The dashboard page of `tp web` (HTML, CSS and JavaScript in one). */
#ifndef TP_CLI_WEB_PAGE_H
#define TP_CLI_WEB_PAGE_H

extern const char tp_web_page[];

#endif
