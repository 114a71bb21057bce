// @ts-check
/**
 * MediaNest web frontend: Next.js configuration (production).
 *
 * Built into the `frontend-production` stage of Dockerfile / Dockerfile.optimized.
 * The bundle-size budget for /app/.next/static is enforced by the day2 rollout plan.
 *
 * @type {import('next').NextConfig}
 */
module.exports = {
  reactStrictMode: true,
  poweredByHeader: false,
  output: 'standalone',
  swcMinify: true,

  // Ship source maps to browsers so that Sentry can symbolicate client stack traces.
  productionBrowserSourceMaps: true,

  images: {
    // Posters and backdrops are served as uploaded: next/image optimisation is off.
    unoptimized: true,
    domains: ['image.tmdb.org', 'artworks.thetvdb.com', 'assets.fanart.tv'],
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
