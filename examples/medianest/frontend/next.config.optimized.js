// @ts-check
/**
 * MediaNest web frontend: Next.js configuration (production, optimised).
 *
 * Day2 of the optimisation rollout swaps this file in for next.config.js:
 *  - source maps are uploaded to Sentry during CI and no longer shipped to browsers;
 *  - next/image serves resized AVIF/WebP renditions instead of the original uploads;
 *  - heavy UI libraries are imported per module.
 * Target: /app/.next/static below the 50 MB bundle budget.
 *
 * @type {import('next').NextConfig}
 */
module.exports = {
  reactStrictMode: true,
  poweredByHeader: false,
  output: 'standalone',
  swcMinify: true,

  // Source maps go to Sentry at build time (hidden-source-map), never to browsers.
  productionBrowserSourceMaps: false,

  images: {
    unoptimized: false,
    formats: ['image/avif', 'image/webp'],
    deviceSizes: [640, 828, 1200, 1920],
    minimumCacheTTL: 86400,
    remotePatterns: [
      { protocol: 'https', hostname: 'image.tmdb.org' },
      { protocol: 'https', hostname: 'artworks.thetvdb.com' },
      { protocol: 'https', hostname: 'assets.fanart.tv' },
    ],
  },

  compiler: {
    // Keep errors and warnings, drop debug logging from the client bundle.
    removeConsole: { exclude: ['error', 'warn'] },
  },

  experimental: {
    optimizePackageImports: ['@mui/material', '@mui/icons-material', 'date-fns', 'lodash'],
  },

  env: {
    NEXT_PUBLIC_API_URL: process.env.NEXT_PUBLIC_API_URL || 'http://localhost:3000',
  },

  async headers() {
    return [
      {
        source: '/_next/static/:path*',
        headers: [{ key: 'Cache-Control', value: 'public, max-age=31536000, immutable' }],
      },
    ];
  },
};
