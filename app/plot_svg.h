/* Scatter plots written as SVG text (no drawing library needed: the browser
 * or the docs viewer renders the fonts). */
#ifndef SF_APP_PLOT_SVG_H
#define SF_APP_PLOT_SVG_H

#include <stdbool.h>
#include <stdio.h>

typedef struct {
    double x, y;
    const char *label;
} svg_point;

/* A scatter of pts[n] with labelled points and axes from 0 (x) and from the
 * lowest y; when frontier, the points no other point beats on both axes
 * (lower x, higher y) are joined by a line. */
void svg_scatter(FILE *f, const char *title, const char *xlabel, const char *ylabel, const svg_point *pts, int n,
                 bool frontier);

#endif
